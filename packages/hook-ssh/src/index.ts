// @drover/hook-ssh: the reference build hook's library (machines file, choice, slots, ssh, remote steps).
export * from './machines.js';
export * from './machine-choice.js';
export * from './machine-health.js';
export * from './slots.js';
export * from './settings.js';
export * from './hook-requests.js';
export * from './ssh.js';
export * from './remote-engine.js';
export * from './remote-ops.js';
export * from './hook.js';
export * from './status.js';
export * from './session-protocol.js';
export * from './session-client.js';
export * from './remote-session.js';
export * from './agent.js';
export * from './agent-link.js';
export * from './log-prefix.js';
