/**
 * The token vault webhook tests seal endpoint secrets with: a fixed key, so a "restart" (a second
 * WebhookService on the same file) opens what the first one sealed.
 */
import { TokenVault } from '../../src/oauth/vault';

export const WEBHOOK_TEST_KEY = Buffer.alloc(32, 7).toString('base64');
export const testVault = TokenVault.fromSecrets(WEBHOOK_TEST_KEY);
