// The connection-quality indicator and audio-only strings (docs/SFU.md, Quality), in English
// and Vietnamese; strings.ts spreads them into its tables.

export const enQuality = {
  'quality.good': 'Connection: good',
  'quality.fair': 'Connection: fair',
  'quality.poor': 'Connection: poor',
  'quality.lost': 'Connection lost',
  'quality.unknown': 'Connection: measuring…',
  'quality.goodHint': 'Audio and video arrive without trouble.',
  'quality.fairHint': 'Some packets are lost or late; you may notice small glitches.',
  'quality.poorHint': 'Many packets are lost or late: speech may break up and video may freeze.',
  'quality.lostHint': 'Nothing has arrived for a few seconds.',
  'quality.unknownHint': 'The first measurements are on their way.',
  'media.audioOnly': 'Audio only',
  'media.audioOnlyOff': 'Show video',
  'media.audioOnlyHint': 'Receive nobody’s video, to save data or help a weak connection. Others still see you.',
  'media.audioOnlyBadge': 'Audio only: you chose not to receive video',
} as const;

export const viQuality: Record<keyof typeof enQuality, string> = {
  'quality.good': 'Kết nối: tốt',
  'quality.fair': 'Kết nối: tạm được',
  'quality.poor': 'Kết nối: kém',
  'quality.lost': 'Mất kết nối',
  'quality.unknown': 'Kết nối: đang đo…',
  'quality.goodHint': 'Âm thanh và hình ảnh đến đầy đủ.',
  'quality.fairHint': 'Một số gói tin bị mất hoặc đến trễ; có thể thỉnh thoảng bị giật nhẹ.',
  'quality.poorHint': 'Nhiều gói tin bị mất hoặc đến trễ: tiếng có thể bị ngắt quãng và hình có thể bị đứng.',
  'quality.lostHint': 'Vài giây nay không nhận được gì.',
  'quality.unknownHint': 'Đang chờ những số đo đầu tiên.',
  'media.audioOnly': 'Chỉ nghe',
  'media.audioOnlyOff': 'Xem video',
  'media.audioOnlyHint': 'Không nhận video của ai cả, để tiết kiệm dữ liệu hoặc đỡ cho kết nối yếu. Người khác vẫn thấy bạn.',
  'media.audioOnlyBadge': 'Chỉ nghe: bạn đã chọn không nhận video',
};
