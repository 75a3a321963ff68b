import { readFileSync } from 'node:fs';
import type { AuthenticationType, AuthHandlerMiddleware, KeyboardInteractiveCallback, NextAuthHandler, Prompt } from 'ssh2';
import type { ResolvedHost } from './sshConfig';

/** How the connection layer asks the user for secrets. The VS Code layer backs it with input boxes
 * and SecretStorage; tests back it with fixed answers. Returning undefined means "cancelled". */
export interface AuthPrompter {
  keyPassphrase(keyPath: string, attempt: number): Promise<string | undefined>;
  /** Called once a passphrase worked, so the prompter can offer to keep it. */
  passphraseAccepted?(keyPath: string, passphrase: string): void;
  password(label: string, user: string, attempt: number): Promise<string | undefined>;
  passwordAccepted?(label: string, user: string, password: string): void;
  keyboardInteractive(label: string, name: string, instructions: string, prompts: readonly Prompt[]): Promise<string[] | undefined>;
}

type Method = { type: 'agent' } | { type: 'publickey'; keyPath: string } | { type: 'keyboard-interactive' } | { type: 'password' };

export interface AuthPlan {
  handler: AuthHandlerMiddleware;
  /** The secret that worked, if one was typed; reported once the connection is ready. */
  onReady(): void;
  describeFailure(): string;
}

/**
 * Builds ssh2's authHandler for a host: ssh-agent, then each identity file (asking for passphrases
 * of encrypted keys), then keyboard-interactive, then password, as OpenSSH orders them.
 * `agent` is what agentSocket.chooseAgent picked (a socket or pipe path, 'pageant', or none).
 */
export function createAuthPlan(host: ResolvedHost, prompter: AuthPrompter, agent: string | undefined): AuthPlan {
  const methods: Method[] = [];
  if (agent && !host.identitiesOnly) methods.push({ type: 'agent' });
  for (const keyPath of host.identityFiles) methods.push({ type: 'publickey', keyPath });
  methods.push({ type: 'keyboard-interactive' }, { type: 'password' });

  const tried: string[] = [];
  let pending: (() => void) | undefined;
  let passwordAttempts = 0;

  const next = async (methodsLeft: AuthenticationType[] | null): Promise<unknown> => {
    while (methods.length > 0) {
      const method = methods.shift()!;
      if (methodsLeft && !methodsLeft.includes(method.type)) continue;
      switch (method.type) {
        case 'agent':
          tried.push('ssh-agent');
          return { type: 'agent', username: host.user, agent };
        case 'publickey': {
          const key = await loadKey(method.keyPath, prompter);
          if (!key) continue;
          tried.push(`key ${method.keyPath}`);
          pending = key.passphrase ? () => prompter.passphraseAccepted?.(method.keyPath, key.passphrase!) : undefined;
          return { type: 'publickey', username: host.user, key: key.data, passphrase: key.passphrase };
        }
        case 'keyboard-interactive':
          tried.push('keyboard-interactive');
          return {
            type: 'keyboard-interactive',
            username: host.user,
            prompt: (name: string, instructions: string, _lang: string, prompts: Prompt[], finish: KeyboardInteractiveCallback) => {
              if (prompts.length === 0) return finish([]);
              prompter.keyboardInteractive(host.label, name, instructions, prompts).then(
                (answers) => finish(answers ?? []),
                () => finish([]),
              );
            },
          };
        case 'password': {
          passwordAttempts += 1;
          const password = await prompter.password(host.label, host.user, passwordAttempts).catch(() => undefined);
          if (password === undefined) continue;
          tried.push('password');
          pending = () => prompter.passwordAccepted?.(host.label, host.user, password);
          // Offer a second try after a wrong password, as OpenSSH does (up to 3).
          if (passwordAttempts < 3) methods.unshift({ type: 'password' });
          return { type: 'password', username: host.user, password };
        }
      }
    }
    return false;
  };

  const handler = (methodsLeft: AuthenticationType[] | null, _partial: boolean | null, callback: NextAuthHandler): void => {
    pending = undefined;
    next(methodsLeft).then(
      (auth) => callback(auth as Parameters<NextAuthHandler>[0]),
      () => callback(false as unknown as Parameters<NextAuthHandler>[0]),
    );
  };

  return {
    handler: handler as unknown as AuthHandlerMiddleware,
    onReady: () => pending?.(),
    describeFailure: () => `authentication as ${host.user} failed (tried: ${tried.join(', ') || 'nothing usable'})`,
  };
}

async function loadKey(keyPath: string, prompter: AuthPrompter): Promise<{ data: Buffer; passphrase?: string } | undefined> {
  let data: Buffer;
  try {
    data = readFileSync(keyPath);
  } catch {
    return undefined; // A default identity that does not exist is simply skipped, as OpenSSH does.
  }
  // ssh2 loads on first use, not at activation (it is most of the bundle's start-up cost).
  const { utils } = require('ssh2') as typeof import('ssh2');
  const parsed = utils.parseKey(data);
  if (!(parsed instanceof Error)) return { data };
  if (!/encrypted/i.test(parsed.message) && !/passphrase/i.test(parsed.message)) return undefined;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const passphrase = await prompter.keyPassphrase(keyPath, attempt).catch(() => undefined);
    if (passphrase === undefined) return undefined;
    if (!(utils.parseKey(data, passphrase) instanceof Error)) return { data, passphrase };
  }
  return undefined;
}
