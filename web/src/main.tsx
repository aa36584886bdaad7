import { effect } from '@preact/signals';
import { render } from 'preact';

import { lang, t } from './i18n';
import { startApp } from './state/app';
import { App } from './ui/App';
import './styles.css';

startApp();
effect(() => {
  document.documentElement.lang = lang.value;
  document.title = t('app.title');
});

const root = document.getElementById('app');
if (root) render(<App />, root);
