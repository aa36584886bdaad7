import { useState } from 'preact/hooks';

import { api } from '../api/client';
import { errorMessage } from '../errors';
import { t } from '../i18n';
import { signIn } from '../state/app';

type Mode = 'guest' | 'login' | 'register';

/** Pick a display name (guest), or log in / sign up. */
export function SignIn({ intro }: { intro?: string }) {
  const [mode, setMode] = useState<Mode>('guest');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function run(action: () => Promise<Parameters<typeof signIn>[0]>) {
    setBusy(true);
    setError(null);
    try {
      signIn(await action());
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  }

  const field = (form: HTMLFormElement, name: string) =>
    (form.elements.namedItem(name) as HTMLInputElement | null)?.value.trim() ?? '';

  return (
    <section class="panel signin" aria-labelledby="signin-title">
      <h1 id="signin-title">{t('signIn.title')}</h1>
      <p class="muted">{intro ?? t('signIn.intro')}</p>
      <div class="tabs" role="group" aria-label={t('signIn.how')}>
        {(['guest', 'login', 'register'] as Mode[]).map((m) => (
          <button
            key={m}
            type="button"
            aria-pressed={mode === m}
            onClick={() => {
              setMode(m);
              setError(null);
            }}
          >
            {t(m === 'guest' ? 'signIn.tabGuest' : m === 'login' ? 'signIn.tabLogin' : 'signIn.tabRegister')}
          </button>
        ))}
      </div>
      {mode === 'guest' && (
        <form
          class="form"
          onSubmit={(e) => {
            e.preventDefault();
            const name = field(e.currentTarget, 'displayName');
            if (name) void run(() => api.guest(name));
          }}
        >
          <label for="guest-name">{t('signIn.displayName')}</label>
          <input id="guest-name" name="displayName" required maxLength={32} autoComplete="nickname" autoFocus />
          <button type="submit" class="button primary" disabled={busy}>
            {t('signIn.continueAsGuest')}
          </button>
        </form>
      )}
      {mode === 'login' && (
        <form
          class="form"
          onSubmit={(e) => {
            e.preventDefault();
            const form = e.currentTarget;
            void run(() => api.login(field(form, 'login'), (form.elements.namedItem('password') as HTMLInputElement).value));
          }}
        >
          <label for="login-name">{t('signIn.login')}</label>
          <input id="login-name" name="login" required autoComplete="username" />
          <label for="login-password">{t('signIn.password')}</label>
          <input id="login-password" name="password" type="password" required autoComplete="current-password" />
          <button type="submit" class="button primary" disabled={busy}>
            {t('signIn.logIn')}
          </button>
        </form>
      )}
      {mode === 'register' && (
        <form
          class="form"
          onSubmit={(e) => {
            e.preventDefault();
            const form = e.currentTarget;
            const displayName = field(form, 'displayName');
            void run(() =>
              api.register({
                username: field(form, 'username'),
                email: field(form, 'email'),
                password: (form.elements.namedItem('password') as HTMLInputElement).value,
                ...(displayName ? { displayName } : {}),
              }),
            );
          }}
        >
          <label for="reg-username">{t('signIn.username')}</label>
          <input
            id="reg-username"
            name="username"
            required
            minLength={3}
            maxLength={32}
            pattern="[A-Za-z0-9][A-Za-z0-9_.]*"
            autoComplete="username"
            aria-describedby="reg-username-hint"
          />
          <small id="reg-username-hint" class="muted">
            {t('signIn.usernameHint')}
          </small>
          <label for="reg-email">{t('signIn.email')}</label>
          <input id="reg-email" name="email" type="email" required autoComplete="email" />
          <label for="reg-password">{t('signIn.password')}</label>
          <input
            id="reg-password"
            name="password"
            type="password"
            required
            minLength={8}
            maxLength={128}
            autoComplete="new-password"
          />
          <label for="reg-display">{t('signIn.displayNameOptional')}</label>
          <input id="reg-display" name="displayName" maxLength={32} autoComplete="nickname" />
          <button type="submit" class="button primary" disabled={busy}>
            {t('signIn.signUp')}
          </button>
        </form>
      )}
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}
