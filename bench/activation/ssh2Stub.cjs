/* STUB of ssh2 for one diagnostic of the activation benchmark: how long the bundle takes to load
 * when ssh2's module code does not run at load time (what lazy-loading ssh2 would save). */
'use strict';
class Client {}
module.exports = { Client };
