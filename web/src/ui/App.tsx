import { useEffect, useRef } from 'preact/hooks';

import { t } from '../i18n';
import { navigate, route } from '../router';
import { activeRoom, leaveRoom } from '../state/roomStore';
import { session } from '../state/session';
import { ConnectionBanner, NoticeBar } from './Banners';
import { Admin } from './Admin';
import { Doctor } from './Doctor';
import { Header } from './Header';
import { Lobby } from './Lobby';
import { RoomView } from './RoomView';
import { SignIn } from './SignIn';

export function App() {
  const current = route.value;
  const firstRoute = useRef(true);

  useEffect(() => {
    // Leaving the room page (back button, logo) gives up the seat.
    if (current.name !== 'room' && activeRoom()) void leaveRoom({ navigateHome: false });
    // A new page: screen readers and keyboards start at its content, not at the old button.
    if (!firstRoute.current) document.getElementById('main')?.focus();
    firstRoute.current = false;
  }, [current]);

  return (
    <div class="app">
      <a class="skip-link" href="#main">
        {t('a11y.skipToContent')}
      </a>
      <Header />
      <ConnectionBanner />
      <NoticeBar />
      <main id="main" tabIndex={-1}>
        {current.name === 'lobby' && <Lobby />}
        {current.name === 'room' &&
          (session.value ? (
            <RoomView key={current.roomId} roomId={current.roomId} />
          ) : (
            <SignIn intro={t('signIn.toJoin')} />
          ))}
        {current.name === 'doctor' &&
          (session.value ? <Doctor /> : <SignIn intro={t('doctor.signIn')} />)}
        {current.name === 'admin' && (session.value ? <Admin /> : <SignIn intro={t('admin.notAdmin')} />)}
        {current.name === 'notFound' && <NotFound />}
      </main>
    </div>
  );
}

function NotFound() {
  return (
    <section class="panel centered">
      <h1>{t('notFound.title')}</h1>
      <p>{t('notFound.body')}</p>
      <a class="button primary" href="/" onClick={(e) => goHome(e)}>
        {t('nav.backToLobby')}
      </a>
    </section>
  );
}

function goHome(e: Event): void {
  e.preventDefault();
  navigate('/');
}
