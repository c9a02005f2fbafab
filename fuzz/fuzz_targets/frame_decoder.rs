//! The frame decoder and control-message decoder on arbitrary bytes, fed
//! in arbitrary pieces: never panics, always makes progress, and every
//! frame it accepts re-encodes to a frame it accepts again unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmdbg_agent::protocol::{decode_control, FrameDecoder, FrameKind};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the piece size, so splits are explored too.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let piece = (split as usize % 64) + 1;
    let mut decoder = FrameDecoder::new();
    let mut outcomes = 0usize;
    for chunk in rest.chunks(piece) {
        decoder.push(chunk);
        while let Some(result) = decoder.next_frame() {
            outcomes += 1;
            assert!(
                outcomes <= rest.len() + 1,
                "the decoder reported more outcomes than there were bytes"
            );
            if let Ok(frame) = result {
                if frame.kind == FrameKind::Control {
                    let _ = decode_control(&frame.payload);
                }
                let mut again = FrameDecoder::new();
                again.push(&frame.encode());
                assert_eq!(again.next_frame(), Some(Ok(frame)));
                assert_eq!(again.next_frame(), None);
            }
        }
    }
});
