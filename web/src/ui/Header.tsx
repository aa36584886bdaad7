import { LANGS, lang, setLang, t, type Lang } from '../i18n';
import { ADMIN_PATH, DOCTOR_PATH, navigate } from '../router';
import { signOut } from '../state/app';
import { session } from '../state/session';
import { Icon } from './Icon';

const LANG_LABEL: Record<Lang, string> = { en: 'EN', vi: 'VI' };
const LANG_NAME: Record<Lang, string> = { en: 'English', vi: 'Tiếng Việt' };

export function Header() {
  const user = session.value?.user;
  return (
    <header class="topbar">
      <a
        class="brand"
        href="/"
        onClick={(e) => {
          e.preventDefault();
          navigate('/');
        }}
      >
        <Icon name="chat" /> TalkConnect
      </a>
      <div class="topbar-right">
        <a
          class="button ghost small"
          href={DOCTOR_PATH}
          data-testid="header-doctor"
          onClick={(e) => {
            e.preventDefault();
            navigate(DOCTOR_PATH);
          }}
        >
          {t('doctor.title')}
        </a>
        {user?.isAdmin && (
          <a
            class="button ghost small"
            href={ADMIN_PATH}
            data-testid="header-admin"
            onClick={(e) => {
              e.preventDefault();
              navigate(ADMIN_PATH);
            }}
          >
            {t('admin.link')}
          </a>
        )}
        <div class="lang-switch" role="group" aria-label={t('lang.label')}>
          {LANGS.map((code) => (
            <button
              type="button"
              key={code}
              lang={code}
              aria-pressed={lang.value === code}
              aria-label={LANG_NAME[code]}
              onClick={() => setLang(code)}
            >
              {LANG_LABEL[code]}
            </button>
          ))}
        </div>
        {user && (
          <div class="whoami">
            <span class="whoami-name" title={user.displayName}>
              {user.displayName}
              {user.isGuest && <span class="badge">{t('user.guest')}</span>}
            </span>
            <button type="button" class="button ghost small" onClick={() => void signOut()}>
              {t('nav.signOut')}
            </button>
          </div>
        )}
      </div>
    </header>
  );
}
