/**
 * @module dashboard/main
 * The dashboard page: sign-in with an API key (kept in this tab's sessionStorage), then three
 * views chosen by the URL's hash (`#/people`, `#/person/<id>`, `#/ops`), so that links, the
 * browser's back button and the keyboard all work as on any page.
 */

import { render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';

import { storedKey, storeKey, tryKey, whenUnauthorized } from './api';
import { html } from './html';
import { LivePeople } from './live';
import { refusalText } from './logic';
import { Ops } from './ops';
import { People } from './people';
import { PersonView } from './person';

type Route = { view: 'people' } | { view: 'person'; userId: string } | { view: 'ops' };

function routeOf(hash: string): Route {
  const person = /^#\/person\/(.+)$/.exec(hash);
  if (person !== null) return { view: 'person', userId: decodeURIComponent(person[1]!) };
  if (hash === '#/ops') return { view: 'ops' };
  return { view: 'people' };
}

function useRoute(): Route {
  const [route, setRoute] = useState(() => routeOf(location.hash));
  useEffect(() => {
    const on = (): void => setRoute(routeOf(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

function SignIn({ onKey, notice }: { onKey: (key: string) => void; notice: string | null }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | null>(notice);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    const k = key.trim();
    if (k === '') return setError('Paste an API key first.');
    setBusy(true);
    try {
      const status = await tryKey(k);
      if (status === 200) onKey(k);
      else setError(refusalText(status));
    } catch {
      setError('The service did not answer.');
    } finally {
      setBusy(false);
    }
  };
  return html`<main id="main" class="signin">
    <h1>presence-aggregator</h1>
    <form onSubmit=${(e: Event) => void submit(e)} aria-describedby="signin-help">
      <label for="key">API key</label>
      <input
        id="key"
        name="key"
        type="password"
        autocomplete="off"
        spellcheck="false"
        required
        value=${key}
        onInput=${(e: Event) => setKey((e.target as HTMLInputElement).value)}
      />
      <button type="submit" disabled=${busy}>Sign in</button>
      <p id="signin-help" class="help">
        A key with the read scope shows people; the admin scope adds webhooks and connections. It is kept in
        this tab only, until the tab closes.
      </p>
      ${error === null ? null : html`<p class="error" role="alert">${error}</p>`}
    </form>
  </main>`;
}

function Shell({ apiKey, onSignOut }: { apiKey: string; onSignOut: () => void }) {
  const route = useRoute();
  const live = useMemo(() => new LivePeople(apiKey), [apiKey]);
  useEffect(() => {
    live.start();
    return () => live.close();
  }, [live]);
  const current = (view: Route['view']): 'page' | undefined => (route.view === view ? 'page' : undefined);
  return html`<div class="shell">
    <a class="skip" href="#main">Skip to content</a>
    <header>
      <h1>presence</h1>
      <nav aria-label="Views">
        <a href="#/people" aria-current=${current('people') ?? (route.view === 'person' ? 'page' : undefined)}
          >People</a
        >
        <a href="#/ops" aria-current=${current('ops')}>Operations</a>
      </nav>
      <button type="button" class="signout" onClick=${onSignOut}>Sign out</button>
    </header>
    <main id="main" tabindex="-1">
      ${
        route.view === 'people'
          ? html`<${People} live=${live} />`
          : route.view === 'person'
            ? html`<${PersonView} key=${route.userId} live=${live} apiKey=${apiKey} userId=${route.userId} />`
            : html`<${Ops} apiKey=${apiKey} />`
      }
    </main>
  </div>`;
}

function App() {
  const [key, setKey] = useState<string | null>(() => storedKey());
  const [notice, setNotice] = useState<string | null>(null);
  useEffect(() => {
    whenUnauthorized(() => {
      storeKey(null);
      setNotice('The service no longer accepts this key: sign in again.');
      setKey(null);
    });
  }, []);
  if (key === null)
    return html`<${SignIn}
      notice=${notice}
      onKey=${(k: string) => {
        storeKey(k);
        setNotice(null);
        setKey(k);
      }}
    />`;
  return html`<${Shell}
    apiKey=${key}
    onSignOut=${() => {
      storeKey(null);
      setKey(null);
    }}
  />`;
}

render(html`<${App} />`, document.getElementById('app')!);
