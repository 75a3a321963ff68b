/**
 * Per-scenario bookkeeping: the devices a scenario starts, screenshots at its steps, and on
 * failure the page screenshot, the extension's Tether log, code-server's output and the sshd log,
 * all in .test-artifacts/e2e/. Every device is disposed when its scenario ends, pass or fail.
 *
 * Use one Scenario per `describe` block:
 *   afterEach(function () { return scenario.afterEach(this); });
 *   after(function () { return scenario.after(this); });
 */
import type { Context } from 'mocha';
import { Device, DeviceOptions } from './device';
import { slug } from './env';
import type { E2eHost } from './hosts';

export class Scenario {
  private devices: Device[] = [];
  private savedFailure = false;

  constructor(
    readonly title: string,
    private readonly hosts: () => E2eHost[],
  ) {}

  /** A scenario for the enclosing `describe`, with its afterEach and after hooks registered. */
  static hooked(title: string, hosts: () => E2eHost[]): Scenario {
    const scenario = new Scenario(title, hosts);
    afterEach(function () {
      return scenario.afterEach(this);
    });
    after(function () {
      return scenario.after(this);
    });
    return scenario;
  }

  /** A new device with the packaged extension installed, its server started and its page open. */
  async device(options: DeviceOptions): Promise<Device> {
    const device = await Device.create(options);
    this.devices.push(device);
    await device.startServer();
    await device.openWorkbench();
    return device;
  }

  async shot(device: Device, step: string): Promise<void> {
    await device.screenshot(this.title, step);
  }

  /** Screenshots and logs of everything involved, named after the scenario and the step that failed. */
  async saveFailure(what: string): Promise<void> {
    const prefix = `${slug(this.title)}--FAILED-${slug(what).slice(0, 40)}`;
    for (const device of this.devices) {
      await device.screenshot(this.title, `failed ${what}`);
      const saved = device.saveLogs(prefix);
      console.log(`      artifacts: ${saved.map((path) => path.replace(/^.*\//, '')).join(', ')}`);
    }
    for (const host of this.hosts()) host.saveLog(prefix);
    this.savedFailure = true;
  }

  async afterEach(context: Context): Promise<void> {
    const test = context.currentTest;
    if (test?.state === 'failed') await this.saveFailure(test.title);
  }

  /** Ends the scenario: artifacts if a hook failed, then every device goes, and the host's sessions. */
  async after(context: Context): Promise<void> {
    const suite = context.test?.parent;
    const hookFailed = !!suite && suite.tests.some((test) => !test.pending && test.state === undefined);
    if (hookFailed && !this.savedFailure) await this.saveFailure('hook');
    const devices = this.devices;
    this.devices = [];
    await Promise.all(devices.map((device) => device.dispose().catch((error) => console.warn(`dispose ${device.options.name}: ${error}`))));
    for (const host of this.hosts()) host.clearSessions();
  }
}
