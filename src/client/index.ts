/**
 * @module client
 * `presence-aggregator/client`: reserved for the real-time stream client (connect over WebSocket
 * or Server-Sent Events, subscribe, resume, a local presence map kept in sync), which arrives
 * with the stream itself in a later release. Today it exports the types of what the service
 * sends, so code can be written against them already, and `CLIENT_AVAILABLE` says the client
 * itself is not there yet.
 */

export type * from '../types';

/** False until the stream client ships in this entry point. */
export const CLIENT_AVAILABLE = false;
