// Timestamps of a room entry (performance.now(), ms), for the media benchmark and the
// browser tests: when the seat was taken over the socket, when the SFU answered, when the
// first remote video frame was shown. Exposed as `window.__talkconnect.marks`.
export interface Marks {
  /** The `room:join` ack of this room entry (the first one, not the re-joins). */
  roomJoinAck?: number;
  localMedia?: number;
  sfuJoinAck?: number;
  connected?: number;
  /** The first decoded and shown remote video frame, of anyone. */
  firstRemoteFrame?: number;
  /** The first shown frame of each publisher. */
  firstFrameOf: Record<string, number>;
}

export const marks: Marks = { firstFrameOf: {} };

export function resetMarks(): void {
  for (const key of Object.keys(marks) as (keyof Marks)[]) delete marks[key];
  marks.firstFrameOf = {};
}

export function mark(name: Exclude<keyof Marks, 'firstFrameOf'>): void {
  if (marks[name] === undefined) marks[name] = performance.now();
}

export function markFirstFrame(userId: string): void {
  if (marks.firstFrameOf[userId] === undefined) marks.firstFrameOf[userId] = performance.now();
  mark('firstRemoteFrame');
}
