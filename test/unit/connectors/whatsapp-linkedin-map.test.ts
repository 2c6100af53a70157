import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { toLinkedInIdentity } from '../../../connectors/linkedin/map';
import { toWhatsAppSightings } from '../../../connectors/whatsapp/map';
import type { WhatsAppWebhook } from '../../../connectors/whatsapp/types';
import { DEFAULT_DECAY } from '../../../src/core/signals';

describe('WhatsApp inference', () => {
  it('an inbound message means the sender was active when they sent it (inferred tier, fading)', () => {
    const hook = JSON.parse(
      readFileSync(
        join(__dirname, '../../../connectors/whatsapp/fixtures/whatsapp-messages-text.json'),
        'utf8',
      ),
    ) as WhatsAppWebhook;
    const [s, ...rest] = toWhatsAppSightings(hook);
    expect(rest).toEqual([]);
    expect(s?.waId).toBe('16505551234');
    expect(s?.presence).toMatchObject({ at: 1749416383000, decay: DEFAULT_DECAY });
    expect(s?.presence.state).toMatchObject({
      status: 'online',
      source: 'inferred',
      raw: { kind: 'message' },
    });
  });

  it('only read statuses count, across several entries and changes', () => {
    const status = (id: string, st: string) => ({
      id,
      status: st,
      timestamp: '1700000000',
      recipient_id: id,
    });
    const hook: WhatsAppWebhook = {
      object: 'whatsapp_business_account',
      entry: [
        {
          id: '1',
          changes: [
            {
              field: 'messages',
              value: {
                messaging_product: 'whatsapp',
                metadata: { display_phone_number: '1', phone_number_id: '1' },
                statuses: [
                  status('a', 'sent'),
                  status('b', 'delivered'),
                  status('c', 'read'),
                  status('d', 'failed'),
                ],
              },
            },
          ],
        },
        {
          id: '2',
          changes: [
            {
              field: 'account_update',
              value: {
                messaging_product: 'whatsapp',
                metadata: { display_phone_number: '1', phone_number_id: '1' },
              },
            },
            {
              field: 'messages',
              value: {
                messaging_product: 'whatsapp',
                metadata: { display_phone_number: '1', phone_number_id: '1' },
                messages: [{ from: 'e', id: 'm', timestamp: '1700000001', type: 'text' }],
              },
            },
          ],
        },
      ],
    };
    const s = toWhatsAppSightings(hook);
    expect(s.map((x) => [x.waId, x.presence.state.label, x.presence.at])).toEqual([
      ['c', 'a read receipt', 1700000000000],
      ['e', 'a message', 1700000001000],
    ]);
  });
});

describe('LinkedIn identity', () => {
  it('takes the OpenID Connect sub and name, and nothing about presence', () => {
    expect(
      toLinkedInIdentity({
        sub: 'abc123',
        given_name: 'Ada',
        family_name: 'Lovelace',
        email: 'ada@example.com',
      }),
    ).toEqual({
      externalId: 'abc123',
      displayName: 'Ada Lovelace',
      email: 'ada@example.com',
    });
    expect(toLinkedInIdentity({ sub: 'x' })).toEqual({ externalId: 'x', displayName: null, email: null });
  });
});
