/**
 * @module connectors/linkedin/types
 * Sign In with LinkedIn using OpenID Connect: the userinfo response
 * (https://learn.microsoft.com/linkedin/consumer/integrations/self-serve/sign-in-with-linkedin-v2).
 */

export interface LinkedInUserInfo {
  readonly sub: string;
  readonly name?: string;
  readonly given_name?: string;
  readonly family_name?: string;
  readonly picture?: string;
  readonly locale?: string | { readonly country?: string; readonly language?: string };
  readonly email?: string;
  readonly email_verified?: boolean;
}
