/**
 * @module http/reply
 * Sending JSON that is already serialized (the engine's cached presence views): Fastify sends a
 * Buffer, or a string with a JSON content type, as it is, so the response serializer is skipped.
 */

export const JSON_TYPE = 'application/json; charset=utf-8';

interface Typed {
  type(contentType: string): unknown;
}

export function sendPrepared(reply: Typed, json: string | Buffer): void {
  // The route's typed `send` only admits the schema's object type; prepared JSON is that
  // object, serialized. Fastify sends a Buffer or a string with a JSON type as it is.
  (reply.type(JSON_TYPE) as { send(payload: string | Buffer): unknown }).send(json);
}
