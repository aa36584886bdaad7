/**
 * The RTCPeerConnection configuration every media connection of the app uses. With
 * `localStorage['talkconnect.relayOnly'] = '1'` media goes only through the TURN relay
 * (`iceTransportPolicy: 'relay'`): nobody in a mesh room sees this browser's address, and a
 * self-hoster can check that the relay carries a call (docs/NETWORK.md).
 */
export const RELAY_ONLY_KEY = 'talkconnect.relayOnly';

export function relayOnly(): boolean {
  try {
    return globalThis.localStorage?.getItem(RELAY_ONLY_KEY) === '1';
  } catch {
    return false;
  }
}

export function rtcConfig(iceServers: RTCIceServer[]): RTCConfiguration {
  return {
    iceServers,
    // max-bundle: one ICE transport from the start (the server bundles everything anyway).
    bundlePolicy: 'max-bundle',
    iceTransportPolicy: relayOnly() ? 'relay' : 'all',
  };
}
