// Stands in for the npm `debug` package in the bundle (MQTT.js and mqtt-packet
// use it for DEBUG=mqttjs* tracing). The real one probes for `supports-color`
// with a require() that a single executable cannot resolve, which prints a
// process warning at every start of the push channel; the agent logs the
// channel's state itself. Same call shape: debug(namespace)(...args).
'use strict';
function createDebug() {
  function log() {}
  log.enabled = false;
  log.extend = createDebug;
  log.log = log;
  log.destroy = () => true;
  return log;
}
createDebug.enable = () => undefined;
createDebug.disable = () => '';
createDebug.enabled = () => false;
module.exports = createDebug;
module.exports.default = createDebug;
