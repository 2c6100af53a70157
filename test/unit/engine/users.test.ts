import { UserService } from '../../../src/aggregator/users';

function setup(revoke?: (userId: string) => Promise<void>) {
  const users = new Set(['alice']);
  const calls: string[] = [];
  const service = new UserService({
    engine: {
      hasUser: (id) => users.has(id),
      deleteUser: (id) => {
        calls.push(`delete ${id}`);
        return Promise.resolve(users.delete(id));
      },
    },
    ...(revoke === undefined
      ? {}
      : {
          revokeConnections: async (id: string) => {
            calls.push(`revoke ${id}`);
            await revoke(id);
          },
        }),
  });
  return { service, users, calls };
}

describe('UserService.deleteUser', () => {
  it('revokes the connections first, then deletes', async () => {
    const t = setup(() => Promise.resolve());
    expect(await t.service.deleteUser('alice')).toBe(true);
    expect(t.calls).toEqual(['revoke alice', 'delete alice']);
  });

  it('an unknown user is false, and nothing is revoked', async () => {
    const t = setup(() => Promise.resolve());
    expect(await t.service.deleteUser('bob')).toBe(false);
    expect(t.calls).toEqual([]);
  });

  it('a revocation that fails keeps the user', async () => {
    const t = setup(() => Promise.reject(new Error('platform down')));
    await expect(t.service.deleteUser('alice')).rejects.toThrow('platform down');
    expect(t.users.has('alice')).toBe(true);
    expect(t.calls).toEqual(['revoke alice']);
  });

  it('without a connection layer, deletes alone', async () => {
    const t = setup();
    expect(await t.service.deleteUser('alice')).toBe(true);
    expect(t.calls).toEqual(['delete alice']);
  });
});
