/**
 * @module test/unit/teams-token-error
 * How the OAuth layer's app-grant failures read in the Teams connector's health: the status and
 * OAuth code only (never AAD's description), and whether waiting may help.
 */

import { tokenEndpointError } from '../../connectors/teams/client';
import { OAuthCallError } from '../../src/oauth/provider-client';

describe('Teams token endpoint errors from the OAuth layer', () => {
  it('an answer with a status keeps the status and code, not the description', () => {
    const e = tokenEndpointError(
      new OAuthCallError(
        'rejected',
        'teams app token answered 401 invalid_client: AADSTS7000215 …',
        401,
        'invalid_client',
      ),
    );
    expect(e.message).toBe(
      "the Microsoft token endpoint refused the app's client credentials: 401 invalid_client",
    );
    expect(e.transient).toBe(false);
    expect(e.message).not.toMatch(/AADSTS/);
  });

  it('a 5xx or no answer may pass', () => {
    expect(tokenEndpointError(new OAuthCallError('transient', 'x', 503, null)).transient).toBe(true);
    const none = tokenEndpointError(new OAuthCallError('transient', 'teams app token failed: timed out'));
    expect(none.transient).toBe(true);
    expect(none.message).toMatch(/did not answer/);
  });

  it('a grant refused before any request (no tenant for an app grant) is not transient', () => {
    const e = tokenEndpointError(new OAuthCallError('rejected', 'teams has no app grant configured'));
    expect(e.transient).toBe(false);
    expect(e.message).toMatch(/cannot be used: teams has no app grant configured/);
  });
});
