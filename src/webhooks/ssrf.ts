/**
 * @module webhooks/ssrf
 * Keeps webhook endpoints from being turned against the network the service runs in: a URL must be
 * http(s), and its host (an address, or every address its name resolves to) must be a public
 * unicast address. Loopback, private, link-local, CGNAT, multicast, documentation and reserved
 * ranges are refused, in IPv4, IPv6, and IPv4 wrapped in IPv6 (mapped, compatible, NAT64, 6to4).
 *
 * The check runs twice: when an endpoint is created, its URL changed or it is re-enabled (a clear
 * 400 for the operator), and at every attempt (`literalTargetRefusal` for a literal address,
 * `guardedLookup` at every connection for a name), so neither a name that later resolves to a
 * private address (DNS rebinding) nor an endpoint saved while private targets were allowed can
 * be reached once they are not.
 */

import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP } from 'node:net';

import { AppError } from '../core/errors';

/** Why an address is refused, or null when it is a public unicast address. */
export function privateAddressReason(address: string): string | null {
  const family = isIP(address);
  if (family === 4) return ipv4Reason(parseIpv4(address)!);
  if (family === 6) {
    const bytes = parseIpv6(address);
    return bytes === null ? 'an unparseable IPv6 address' : ipv6Reason(bytes);
  }
  return 'not an IP address';
}

function parseIpv4(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out.push(n);
  }
  return out;
}

function ipv4Reason(b: readonly number[]): string | null {
  const [a = 0, c = 0, d = 0, e = 0] = b;
  if (a === 0) return 'a "this network" address (0.0.0.0/8)';
  if (a === 127) return 'a loopback address';
  if (a === 10) return 'a private address (10.0.0.0/8)';
  if (a === 172 && c >= 16 && c <= 31) return 'a private address (172.16.0.0/12)';
  if (a === 192 && c === 168) return 'a private address (192.168.0.0/16)';
  if (a === 169 && c === 254) return 'a link-local address (169.254.0.0/16, cloud metadata lives here)';
  if (a === 100 && c >= 64 && c <= 127) return 'a carrier-grade NAT address (100.64.0.0/10)';
  if (a === 192 && c === 0 && d === 0) return 'an IETF protocol address (192.0.0.0/24)';
  if (a === 192 && c === 0 && d === 2) return 'a documentation address (192.0.2.0/24)';
  if (a === 198 && c === 51 && d === 100) return 'a documentation address (198.51.100.0/24)';
  if (a === 203 && c === 0 && d === 113) return 'a documentation address (203.0.113.0/24)';
  if (a === 198 && (c === 18 || c === 19)) return 'a benchmarking address (198.18.0.0/15)';
  if (a >= 224 && a <= 239) return 'a multicast address';
  if (a >= 240)
    return a === 255 && c === 255 && d === 255 && e === 255
      ? 'the broadcast address'
      : 'a reserved address (240.0.0.0/4)';
  return null;
}

/** 16 bytes, or null. Accepts `::` compression, a trailing dotted IPv4 part and a zone (`%eth0`). */
function parseIpv6(text: string): number[] | null {
  let s = text.toLowerCase();
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    const v4 = parseIpv4(s.slice(lastColon + 1));
    if (v4 === null) return null;
    tail = v4;
    s = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (!/^[0-9a-f]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === null || rest === null) return null;
  const missing = 8 - head.length - rest.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const words = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...rest];
  const bytes: number[] = [];
  for (const w of words) bytes.push(w >> 8, w & 255);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

function ipv6Reason(b: readonly number[]): string | null {
  const zeros = (from: number, to: number): boolean => b.slice(from, to).every((x) => x === 0);
  const embedded = (from: number): string | null => {
    const inner = ipv4Reason(b.slice(from, from + 4));
    return inner === null ? null : `${inner} inside an IPv6 address`;
  };
  if (zeros(0, 16)) return 'the unspecified address (::)';
  if (zeros(0, 15) && b[15] === 1) return 'a loopback address (::1)';
  // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (the deprecated compatible form) reach IPv4 hosts.
  if (zeros(0, 10) && b[10] === 0xff && b[11] === 0xff) return embedded(12);
  if (zeros(0, 12)) return embedded(12);
  // 64:ff9b::/96 (NAT64) and 2002::/16 (6to4) carry an IPv4 address too.
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zeros(4, 12)) return embedded(12);
  if (b[0] === 0x20 && b[1] === 0x02) return embedded(2);
  const first = b[0]!;
  const second = b[1]!;
  if ((first & 0xfe) === 0xfc) return 'a private address (unique local, fc00::/7)';
  if (first === 0xfe && (second & 0xc0) === 0x80) return 'a link-local address (fe80::/10)';
  if (first === 0xfe && (second & 0xc0) === 0xc0) return 'a site-local address (fec0::/10)';
  if (first === 0xff) return 'a multicast address';
  if (first === 0x20 && second === 0x01 && b[2] === 0x0d && b[3] === 0xb8)
    return 'a documentation address (2001:db8::/32)';
  if (first === 0x01 && zeros(1, 8)) return 'a discard address (100::/64)';
  // Only 2000::/3 is allocated for global unicast; everything else is reserved.
  if ((first & 0xe0) !== 0x20) return 'a reserved address';
  return null;
}

/** Resolves a host name to every address it has (the system resolver, as connections use). */
export type Resolver = (hostname: string) => Promise<string[]>;

export const systemResolver: Resolver = (hostname) =>
  new Promise((resolve, reject) => {
    dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses) => {
      if (err !== null) reject(err);
      else resolve(addresses.map((a) => a.address));
    });
  });

export interface UrlCheckOptions {
  /** Loopback and private targets are allowed (the demo and tests; `WEBHOOK_ALLOW_PRIVATE_TARGETS`). */
  readonly allowPrivateTargets: boolean;
  readonly resolve?: Resolver;
}

export const MAX_URL_LENGTH = 2048;

/** What the operator sets to allow such targets (the demo, tests, a receiver on the same host). */
const ALLOW_HINT = '(set WEBHOOK_ALLOW_PRIVATE_TARGETS=true to allow loopback and private addresses)';

const refuse = (message: string): AppError =>
  new AppError('invalid_request', message, [{ code: 'invalid_url', message, path: ['url'] }]);

/**
 * Checks an endpoint URL and returns it normalized. Throws `AppError('invalid_request')` saying
 * what is wrong: not a URL, not http(s), credentials in it, or a host that is (or resolves to) an
 * address this service must not call.
 */
export async function checkEndpointUrl(raw: string, options: UrlCheckOptions): Promise<string> {
  if (raw.length > MAX_URL_LENGTH) throw refuse(`url is longer than ${MAX_URL_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw refuse('url is not an absolute URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw refuse(`url must use http or https, not ${url.protocol.replace(/:$/, '')}`);
  }
  if (url.username !== '' || url.password !== '') {
    throw refuse('url must not carry credentials (user:password@); put a token in the path or query');
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (host === '') throw refuse('url has no host');
  if (!options.allowPrivateTargets) {
    if (isIP(host) !== 0) {
      const reason = privateAddressReason(host);
      if (reason !== null)
        throw refuse(`url points at ${reason}; only public addresses are allowed ${ALLOW_HINT}`);
    } else {
      let addresses: string[];
      try {
        addresses = await (options.resolve ?? systemResolver)(host);
      } catch {
        throw refuse(`url host ${host} does not resolve`);
      }
      if (addresses.length === 0) throw refuse(`url host ${host} does not resolve`);
      for (const address of addresses) {
        const reason = privateAddressReason(address);
        if (reason !== null) {
          throw refuse(
            `url host ${host} resolves to ${address}, ${reason}; only public addresses are allowed ${ALLOW_HINT}`,
          );
        }
      }
    }
  }
  url.hash = '';
  return url.toString();
}

/**
 * The send-time half of the guard for a URL whose host is a literal address (those never reach
 * `guardedLookup`): why this service must not call it, or null (a public address, or a host name,
 * which the lookup checks). Checked before every attempt, so an endpoint saved while private
 * targets were allowed is not called once they are not.
 */
export function literalTargetRefusal(url: string): string | null {
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    return 'the url is not an absolute URL';
  }
  if (host.startsWith('[')) host = host.slice(1, -1);
  if (isIP(host) === 0) return null;
  const reason = privateAddressReason(host);
  return reason === null ? null : `the url points at ${reason}`;
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for `net.connect` that refuses private addresses: the connection-time half of the
 * guard. (A literal address in the URL never reaches `lookup`; `literalTargetRefusal` checks
 * those before each attempt.)
 */
export function guardedLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err !== null) {
      callback(err, options.all === true ? [] : '', undefined);
      return;
    }
    for (const a of addresses) {
      const reason = privateAddressReason(a.address);
      if (reason !== null) {
        const refused: NodeJS.ErrnoException = new Error(
          `webhook host ${hostname} resolves to ${a.address}, ${reason}; refused ${ALLOW_HINT}`,
        );
        refused.code = 'EPRIVATETARGET';
        callback(refused, options.all === true ? [] : '', undefined);
        return;
      }
    }
    if (options.all === true) callback(null, addresses);
    else if (addresses[0] === undefined)
      callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', undefined);
    else callback(null, addresses[0].address, addresses[0].family);
  });
}
