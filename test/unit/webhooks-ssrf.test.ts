import { checkEndpointUrl, literalTargetRefusal, privateAddressReason } from '../../src/webhooks/ssrf';

describe('privateAddressReason', () => {
  it.each([
    ['0.0.0.0', /this network/],
    ['127.0.0.1', /loopback/],
    ['127.255.255.254', /loopback/],
    ['10.0.0.1', /private/],
    ['172.16.0.1', /private/],
    ['172.31.255.255', /private/],
    ['192.168.0.1', /private/],
    ['169.254.169.254', /link-local/],
    ['100.64.0.1', /carrier-grade NAT/],
    ['192.0.0.8', /IETF/],
    ['192.0.2.1', /documentation/],
    ['198.18.0.1', /benchmarking/],
    ['224.0.0.1', /multicast/],
    ['240.0.0.1', /reserved/],
    ['255.255.255.255', /broadcast/],
    ['::', /unspecified/],
    ['::1', /loopback/],
    ['::ffff:127.0.0.1', /loopback address inside an IPv6 address/],
    ['::ffff:7f00:1', /loopback address inside/],
    ['::ffff:10.0.0.1', /private address \(10\.0\.0\.0\/8\) inside/],
    ['::ffff:169.254.169.254', /link-local address .* inside/],
    ['::127.0.0.1', /loopback address inside/],
    ['64:ff9b::a9fe:a9fe', /link-local address .* inside/],
    ['2002:c0a8:0101::1', /private address \(192\.168\.0\.0\/16\) inside/],
    ['fc00::1', /unique local/],
    ['fd12:3456::1', /unique local/],
    ['fe80::1', /link-local/],
    ['fe80::1%eth0', /link-local/],
    ['fec0::1', /site-local/],
    ['ff02::1', /multicast/],
    ['2001:db8::1', /documentation/],
    ['100::1', /discard/],
    ['4000::1', /reserved/],
    ['not-an-ip', /not an IP/],
  ])('refuses %s', (address, reason) => {
    expect(privateAddressReason(address)).toMatch(reason);
  });

  it.each([
    '93.184.216.34',
    '8.8.8.8',
    '172.32.0.1',
    '100.128.0.1',
    '192.169.0.1',
    '2606:4700:4700::1111',
    '::ffff:8.8.8.8',
    '64:ff9b::808:808',
    '2002:0808:0808::1',
  ])('accepts the public address %s', (address) => {
    expect(privateAddressReason(address)).toBeNull();
  });
});

describe('checkEndpointUrl', () => {
  const resolve = (host: string): Promise<string[]> =>
    host === 'public.test'
      ? Promise.resolve(['93.184.216.34'])
      : host === 'rebind.test'
        ? Promise.resolve(['::ffff:127.0.0.1'])
        : Promise.reject(new Error('ENOTFOUND'));
  const strict = { allowPrivateTargets: false, resolve };

  it('normalizes and accepts public targets', async () => {
    await expect(checkEndpointUrl('HTTPS://Public.Test/a?b=1#frag', strict)).resolves.toBe(
      'https://public.test/a?b=1',
    );
    await expect(checkEndpointUrl('http://93.184.216.34:8080/x', strict)).resolves.toBe(
      'http://93.184.216.34:8080/x',
    );
  });

  it.each([
    ['http://rebind.test/', /resolves to ::ffff:127\.0\.0\.1/],
    ['http://[::ffff:a9fe:a9fe]/', /link-local/],
    ['http://017700000001/', /loopback/], // octal 127.0.0.1
    ['http://0/', /this network/],
    ['data:text/plain,hi', /http or https/],
    ['//public.test/', /not an absolute URL/],
  ])('refuses %s', async (url, message) => {
    await expect(checkEndpointUrl(url, strict)).rejects.toMatchObject({
      code: 'invalid_request',
      message: expect.stringMatching(message),
    });
  });

  it('lets the operator allow private targets, still only over http(s)', async () => {
    const open = { allowPrivateTargets: true, resolve };
    await expect(checkEndpointUrl('http://127.0.0.1:3000/', open)).resolves.toBe('http://127.0.0.1:3000/');
    await expect(checkEndpointUrl('http://rebind.test/', open)).resolves.toBe('http://rebind.test/');
    await expect(checkEndpointUrl('gopher://127.0.0.1/', open)).rejects.toMatchObject({
      code: 'invalid_request',
    });
  });
});

describe('literalTargetRefusal (the send-time check of a literal address)', () => {
  it.each([
    ['http://127.0.0.1:8080/hook', /loopback/],
    ['http://2130706433/hook', /loopback/], // 127.0.0.1 as one number, as the URL parser reads it
    ['http://[::1]/hook', /loopback/],
    ['http://[::ffff:10.0.0.1]/hook', /private address \(10\.0\.0\.0\/8\) inside/],
    ['https://169.254.169.254/latest/meta-data', /link-local/],
    ['not a url', /not an absolute URL/],
  ])('refuses %s', (url, reason) => {
    expect(literalTargetRefusal(url)).toMatch(reason);
  });

  it.each([
    'https://93.184.216.34/hook',
    'https://[2606:2800:220:1:248:1893:25c8:1946]/hook',
    // A name is left to the connection-time lookup, which checks what it resolves to then.
    'http://localhost/hook',
    'https://hooks.example.com/hook',
  ])('lets %s through', (url) => {
    expect(literalTargetRefusal(url)).toBeNull();
  });
});
