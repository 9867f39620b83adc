//! The codec of binary WebSocket frames (the schema's `x-binaryFrames`):
//! [`encode_process_output`] writes a `process/output` notification as one
//! frame, [`decode_binary_frame`] reads one back. Both go by the generated
//! constants of `frame_layout` alone (kind code, offsets, header length,
//! stream codes), so a layout change in the schema reaches them through
//! `cargo xtask codegen`.
//!
//! A `processOutput` frame: the kind byte, the stream code, `seq` as a
//! big-endian u64, the processId's length in bytes as a big-endian u16, the
//! processId in UTF-8, then the chunk's raw bytes to the end.

use crate::frame_layout::{
    PROCESS_OUTPUT_FRAME_HEADER_LENGTH, PROCESS_OUTPUT_FRAME_KIND,
    PROCESS_OUTPUT_FRAME_KIND_OFFSET, PROCESS_OUTPUT_FRAME_PROCESS_ID_LENGTH_OFFSET,
    PROCESS_OUTPUT_FRAME_PROCESS_ID_MAX_LENGTH, PROCESS_OUTPUT_FRAME_PROCESS_ID_OFFSET,
    PROCESS_OUTPUT_FRAME_SEQ_OFFSET, PROCESS_OUTPUT_FRAME_STREAM_OFFSET,
    process_output_frame_stream_code, process_output_frame_stream_from_code,
};
use crate::{Base64Bytes, OutputStream, ProcessId, ProcessOutputNotification};

/// Why a binary frame could not be decoded: each is a protocol error of
/// the peer that sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinaryFrameError {
    /// The message has no bytes at all, so no kind.
    #[error("an empty binary frame")]
    Empty,
    /// The first byte is no frame kind the schema defines.
    #[error("a binary frame of unknown kind {kind}")]
    UnknownKind {
        /// The kind byte.
        kind: u8,
    },
    /// The frame ends inside its fixed header.
    #[error("a binary frame of {length} bytes, shorter than its {header_length}-byte header")]
    TooShort {
        /// The frame's length, in bytes.
        length: usize,
        /// The header's length, in bytes.
        header_length: usize,
    },
    /// The stream byte is no stream code the schema defines.
    #[error("a binary frame with unknown stream code {code}")]
    UnknownStream {
        /// The stream byte.
        code: u8,
    },
    /// The processId's length runs past the end of the frame.
    #[error(
        "a binary frame whose processId length ({length} bytes) runs past its end ({available} bytes left)"
    )]
    ProcessIdPastEnd {
        /// The length the frame gives, in bytes.
        length: usize,
        /// The bytes after the header.
        available: usize,
    },
    /// The processId is not UTF-8.
    #[error("a binary frame whose processId is not UTF-8")]
    ProcessIdNotUtf8,
    /// The processId breaks the schema's rules for it (empty).
    #[error("a binary frame with an invalid processId: {reason}")]
    InvalidProcessId {
        /// What the schema's check said.
        reason: String,
    },
}

/// The length in bytes of a `processOutput` frame's head (the fixed header
/// and the processId) for `process_id`: where the chunk starts. `None` when
/// the processId is longer than the frame's length field can say (65535
/// bytes), and the notification must go as text instead.
pub fn process_output_head_length(process_id: &ProcessId) -> Option<usize> {
    let length = process_id.len();
    (length <= PROCESS_OUTPUT_FRAME_PROCESS_ID_MAX_LENGTH)
        .then_some(PROCESS_OUTPUT_FRAME_HEADER_LENGTH + length)
}

/// Writes the head of a `processOutput` frame (the fixed header, then the
/// processId) into `head`, which must be exactly
/// [`process_output_head_length`] bytes long; the chunk's bytes follow it
/// in the frame. Returns false, writing nothing, when `head` has another
/// length (which includes a processId too long for a frame).
pub fn write_process_output_head(
    head: &mut [u8],
    process_id: &ProcessId,
    seq: u64,
    stream: OutputStream,
) -> bool {
    if process_output_head_length(process_id) != Some(head.len()) {
        return false;
    }
    let process_id = process_id.as_bytes();
    let Ok(length) = u16::try_from(process_id.len()) else {
        return false;
    };
    head[PROCESS_OUTPUT_FRAME_KIND_OFFSET] = PROCESS_OUTPUT_FRAME_KIND;
    head[PROCESS_OUTPUT_FRAME_STREAM_OFFSET] = process_output_frame_stream_code(stream);
    head[PROCESS_OUTPUT_FRAME_SEQ_OFFSET..PROCESS_OUTPUT_FRAME_SEQ_OFFSET + 8]
        .copy_from_slice(&seq.to_be_bytes());
    head[PROCESS_OUTPUT_FRAME_PROCESS_ID_LENGTH_OFFSET
        ..PROCESS_OUTPUT_FRAME_PROCESS_ID_LENGTH_OFFSET + 2]
        .copy_from_slice(&length.to_be_bytes());
    head[PROCESS_OUTPUT_FRAME_PROCESS_ID_OFFSET..].copy_from_slice(process_id);
    true
}

/// `notification` as one `processOutput` frame; `None` when its processId
/// is longer than the frame's length field can say (65535 bytes), and the
/// notification must go as text instead.
pub fn encode_process_output(notification: &ProcessOutputNotification) -> Option<Vec<u8>> {
    let head_length = process_output_head_length(&notification.process_id)?;
    let chunk = &notification.chunk.0;
    let mut frame = vec![0; head_length];
    frame.reserve_exact(chunk.len());
    if !write_process_output_head(
        &mut frame,
        &notification.process_id,
        notification.seq,
        notification.stream,
    ) {
        return None;
    }
    frame.extend_from_slice(chunk);
    Some(frame)
}

/// A `processOutput` frame's head, read without copying the chunk that
/// follows it: a reader that owns the frame (tokio-tungstenite's `Bytes`)
/// takes the chunk as `&frame[chunk_offset..]` or a slice of its buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOutputHead {
    /// The process the chunk is from.
    pub process_id: ProcessId,
    /// The chunk's seq.
    pub seq: u64,
    /// The stream the chunk is from.
    pub stream: OutputStream,
    /// Where the chunk starts in the frame, in bytes (the chunk runs to the end).
    pub chunk_offset: usize,
}

/// Reads the head of one binary frame (today only `process/output` has a
/// frame kind); the chunk is the rest of the frame.
///
/// # Errors
/// A [`BinaryFrameError`] saying what is wrong with the frame; never panics
/// on any input.
pub fn read_process_output_head(frame: &[u8]) -> Result<ProcessOutputHead, BinaryFrameError> {
    let Some(&kind) = frame.get(PROCESS_OUTPUT_FRAME_KIND_OFFSET) else {
        return Err(BinaryFrameError::Empty);
    };
    if kind != PROCESS_OUTPUT_FRAME_KIND {
        return Err(BinaryFrameError::UnknownKind { kind });
    }
    let too_short = || BinaryFrameError::TooShort {
        length: frame.len(),
        header_length: PROCESS_OUTPUT_FRAME_HEADER_LENGTH,
    };
    let header = frame
        .get(..PROCESS_OUTPUT_FRAME_HEADER_LENGTH)
        .ok_or_else(too_short)?;
    let code = header[PROCESS_OUTPUT_FRAME_STREAM_OFFSET];
    let stream = process_output_frame_stream_from_code(code)
        .ok_or(BinaryFrameError::UnknownStream { code })?;
    let seq =
        u64::from_be_bytes(array(header, PROCESS_OUTPUT_FRAME_SEQ_OFFSET).ok_or_else(too_short)?);
    let length = usize::from(u16::from_be_bytes(
        array(header, PROCESS_OUTPUT_FRAME_PROCESS_ID_LENGTH_OFFSET).ok_or_else(too_short)?,
    ));
    let rest = &frame[PROCESS_OUTPUT_FRAME_PROCESS_ID_OFFSET..];
    let (process_id, _chunk) =
        rest.split_at_checked(length)
            .ok_or(BinaryFrameError::ProcessIdPastEnd {
                length,
                available: rest.len(),
            })?;
    let process_id =
        std::str::from_utf8(process_id).map_err(|_| BinaryFrameError::ProcessIdNotUtf8)?;
    let process_id =
        ProcessId::try_from(process_id).map_err(|error| BinaryFrameError::InvalidProcessId {
            reason: error.to_string(),
        })?;
    Ok(ProcessOutputHead {
        chunk_offset: PROCESS_OUTPUT_FRAME_PROCESS_ID_OFFSET + length,
        process_id,
        seq,
        stream,
    })
}

/// Decodes one binary frame into the notification it stands for, with a
/// copy of its chunk (see [`read_process_output_head`] to take it without).
///
/// # Errors
/// A [`BinaryFrameError`] saying what is wrong with the frame; never panics
/// on any input.
pub fn decode_binary_frame(frame: &[u8]) -> Result<ProcessOutputNotification, BinaryFrameError> {
    let head = read_process_output_head(frame)?;
    Ok(ProcessOutputNotification {
        chunk: Base64Bytes(frame.get(head.chunk_offset..).unwrap_or_default().to_vec()),
        process_id: head.process_id,
        seq: head.seq,
        stream: head.stream,
    })
}

/// The `N` bytes of `bytes` at `offset`, when they are there.
fn array<const N: usize>(bytes: &[u8], offset: usize) -> Option<[u8; N]> {
    bytes.get(offset..offset.checked_add(N)?)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::OutputStream;

    fn notification(
        process_id: &str,
        seq: u64,
        stream: OutputStream,
        chunk: &[u8],
    ) -> ProcessOutputNotification {
        ProcessOutputNotification {
            chunk: Base64Bytes(chunk.to_vec()),
            process_id: process_id.parse().expect("a valid process id"),
            seq,
            stream,
        }
    }

    #[test]
    fn the_layout_is_the_schemas() {
        let frame = encode_process_output(&notification(
            "p1",
            0x0102_0304_0506_0708,
            OutputStream::Stderr,
            b"hi",
        ))
        .expect("encodes");
        assert_eq!(
            frame,
            [1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 2, b'p', b'1', b'h', b'i']
        );
    }

    #[test]
    fn every_stream_seq_and_chunk_round_trips() {
        for stream in [
            OutputStream::Stdout,
            OutputStream::Stderr,
            OutputStream::Pty,
        ] {
            for seq in [0, 1, u64::MAX] {
                for chunk in [&b""[..], b"\x00\xff\n", &[7_u8; 70_000]] {
                    for process_id in ["p", "odd \"id\" ✓ \n", &"x".repeat(65_535)] {
                        let original = notification(process_id, seq, stream, chunk);
                        let frame = encode_process_output(&original).expect("encodes");
                        assert_eq!(frame.len(), 12 + process_id.len() + chunk.len());
                        assert_eq!(decode_binary_frame(&frame), Ok(original));
                    }
                }
            }
        }
    }

    #[test]
    fn a_head_written_in_place_is_the_encoded_frames_head() {
        for process_id in ["p", "odd \"id\" ✓ \n", &"x".repeat(65_535)] {
            let original = notification(process_id, 9, OutputStream::Pty, b"chunk");
            let id = &original.process_id;
            let length = process_output_head_length(id).expect("fits");
            let mut frame = vec![0xAA; length];
            assert!(write_process_output_head(
                &mut frame,
                id,
                9,
                OutputStream::Pty
            ));
            frame.extend_from_slice(b"chunk");
            assert_eq!(Some(frame), encode_process_output(&original));
        }
    }

    #[test]
    fn a_read_head_says_where_the_chunk_starts() {
        for process_id in ["p", "odd \"id\" ✓ \n", &"x".repeat(65_535)] {
            let original = notification(process_id, 7, OutputStream::Stderr, b"the chunk");
            let frame = encode_process_output(&original).expect("fits");
            let head = read_process_output_head(&frame).expect("a valid frame");
            assert_eq!(
                Some(head.chunk_offset),
                process_output_head_length(&original.process_id)
            );
            assert_eq!(&frame[head.chunk_offset..], b"the chunk");
            assert_eq!(
                (head.process_id, head.seq, head.stream),
                (original.process_id, 7, OutputStream::Stderr)
            );
        }
    }

    #[test]
    fn a_head_of_the_wrong_length_is_not_written() {
        let id: ProcessId = "p1".parse().expect("a valid process id");
        let length = process_output_head_length(&id).expect("fits");
        for wrong in [0, length - 1, length + 1] {
            let mut head = vec![0xAA; wrong];
            assert!(!write_process_output_head(
                &mut head,
                &id,
                1,
                OutputStream::Stdout
            ));
            assert!(head.iter().all(|&byte| byte == 0xAA), "nothing written");
        }
        let long: ProcessId = "x".repeat(65_536).parse().expect("a valid process id");
        assert_eq!(process_output_head_length(&long), None);
        let mut head = vec![0; 12 + 65_536];
        assert!(!write_process_output_head(
            &mut head,
            &long,
            1,
            OutputStream::Stdout
        ));
    }

    #[test]
    fn a_process_id_too_long_for_the_frame_is_not_encoded() {
        let original = notification(&"x".repeat(65_536), 1, OutputStream::Stdout, b"a");
        assert_eq!(encode_process_output(&original), None);
    }

    #[test]
    fn every_malformed_frame_is_an_error() {
        let good = encode_process_output(&notification("ab", 3, OutputStream::Pty, b"xyz"))
            .expect("encodes");
        let with = |index: usize, byte: u8| {
            let mut frame = good.clone();
            frame[index] = byte;
            frame
        };
        let cases: Vec<(Vec<u8>, BinaryFrameError)> = vec![
            (Vec::new(), BinaryFrameError::Empty),
            (with(0, 0), BinaryFrameError::UnknownKind { kind: 0 }),
            (with(0, 2), BinaryFrameError::UnknownKind { kind: 2 }),
            (with(0, b'{'), BinaryFrameError::UnknownKind { kind: b'{' }),
            (
                good[..11].to_vec(),
                BinaryFrameError::TooShort {
                    length: 11,
                    header_length: 12,
                },
            ),
            (
                vec![1],
                BinaryFrameError::TooShort {
                    length: 1,
                    header_length: 12,
                },
            ),
            (with(1, 3), BinaryFrameError::UnknownStream { code: 3 }),
            (with(1, 255), BinaryFrameError::UnknownStream { code: 255 }),
            (
                good[..13].to_vec(),
                BinaryFrameError::ProcessIdPastEnd {
                    length: 2,
                    available: 1,
                },
            ),
            (
                with(11, 200),
                BinaryFrameError::ProcessIdPastEnd {
                    length: 200,
                    available: 5,
                },
            ),
            (with(12, 0xff), BinaryFrameError::ProcessIdNotUtf8),
        ];
        for (frame, expected) in cases {
            assert_eq!(decode_binary_frame(&frame), Err(expected), "{frame:?}");
        }
        let empty_id = [1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, b'x'];
        assert!(matches!(
            decode_binary_frame(&empty_id),
            Err(BinaryFrameError::InvalidProcessId { .. })
        ));
    }

    #[test]
    fn a_frame_that_is_only_a_header_and_id_has_an_empty_chunk() {
        let frame = [1, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1, b'p'];
        assert_eq!(
            decode_binary_frame(&frame),
            Ok(notification("p", 9, OutputStream::Stdout, b""))
        );
    }
}
