//! Feed arbitrary bytes to the streaming frame decoder, split at the first byte's value, and
//! decode every frame body; then check that every decoded message re-encodes and decodes to
//! itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinsite_ocg::{decode_one, encode, FrameDecoder};

fuzz_target!(|data: &[u8]| {
    let split = data.first().copied().unwrap_or(0) as usize;
    let cut = split.min(data.len());
    let mut decoder = FrameDecoder::default();
    for part in [&data[..cut], &data[cut..]] {
        decoder.feed(part);
        while let Ok(Some(frame)) = decoder.next_frame() {
            if let Ok(msg) = frame.message() {
                let h = &frame.header;
                let bytes = encode(h.seq, h.poss_dup, h.poss_resend, &h.comp_id, &msg)
                    .expect("a decoded message fits a frame");
                let (_, back) = decode_one(&bytes).expect("re-encoded frame decodes");
                assert_eq!(back, msg);
            }
        }
    }
});
