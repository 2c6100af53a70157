import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { toLinkedInIdentity } from '../../../connectors/linkedin/map';
import { toWhatsAppSightings } from '../../../connectors/whatsapp/map';
import type { WhatsAppBatch, WhatsAppWebhook } from '../../../connectors/whatsapp/types';
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
    expect(s?.ids).toEqual(['16505551234']);
    expect(s?.key).toBe('message:wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=');
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
    expect(s.map((x) => [x.ids[0], x.presence.state.label, x.presence.at])).toEqual([
      ['c', 'a read receipt', 1700000000000],
      ['e', 'a message', 1700000001000],
    ]);
  });
  describe('who a status or message credits', () => {
    const batch = (value: object): WhatsAppBatch => ({
      entry: [{ changes: [{ field: 'messages', value }] }],
    });
    const status = (extra: object) => ({ id: 'wamid.G', status: 'read', timestamp: '1700000000', ...extra });

    it('a read receipt in a group credits the participant, never the group', () => {
      const [s, ...rest] = toWhatsAppSightings(
        batch({
          statuses: [
            status({
              recipient_id: '120363021234567890',
              recipient_type: 'group',
              recipient_participant_id: '16505551234',
            }),
          ],
        }),
      );
      expect(rest).toEqual([]);
      expect(s?.ids).toEqual(['16505551234']);
      // Each participant's receipt of one message is its own sighting.
      expect(s?.key).toBe('status:wamid.G:read:16505551234');
    });

    it('a group status without a participant credits nobody', () => {
      expect(
        toWhatsAppSightings(
          batch({ statuses: [status({ recipient_id: '120363021234567890', recipient_type: 'group' })] }),
        ),
      ).toEqual([]);
    });

    it('a played voice message counts like a read receipt', () => {
      const [s] = toWhatsAppSightings(
        batch({ statuses: [status({ status: 'played', recipient_id: '16505551234' })] }),
      );
      expect(s?.ids).toEqual(['16505551234']);
      expect(s?.presence.state).toMatchObject({
        status: 'online',
        source: 'inferred',
        raw: { kind: 'read' },
      });
    });

    it('a sender or recipient known only by a business-scoped user id is matched by it', () => {
      const [m, r] = toWhatsAppSightings(
        batch({
          messages: [
            { id: 'wamid.M', from_user_id: 'US.13491208655302741918', timestamp: '1700000001', type: 'text' },
          ],
          statuses: [status({ recipient_user_id: 'US.13491208655302741918' })],
        }),
      );
      expect(m?.ids).toEqual(['US.13491208655302741918']);
      expect(r?.ids).toEqual(['US.13491208655302741918']);
    });

    it('with both ids the phone number is tried first, then the BSUID', () => {
      const [m] = toWhatsAppSightings(
        batch({
          messages: [
            { id: 'wamid.M', from: '16505551234', from_user_id: 'US.1349', timestamp: '1700000001' },
          ],
        }),
      );
      expect(m?.ids).toEqual(['16505551234', 'US.1349']);
    });

    it('a message with no sender id, or a timestamp that is not unix seconds, gives nothing', () => {
      expect(toWhatsAppSightings(batch({ messages: [{ id: 'wamid.M', timestamp: '1700000001' }] }))).toEqual(
        [],
      );
      expect(
        toWhatsAppSightings(
          batch({ messages: [{ id: 'wamid.M', from: '1', timestamp: '2023-11-14T22:13:20Z' }] }),
        ),
      ).toEqual([]);
    });
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
