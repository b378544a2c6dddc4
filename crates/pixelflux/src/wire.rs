//! The stripe headers, in one place. All multi-byte fields are big-endian `u16`.
//!
//! | kind | bytes | layout |
//! |---|---|---|
//! | JPEG, [`WireFormat::Compat`] (1.2.2) | 4 | `frame_id`, `y` |
//! | JPEG, [`WireFormat::Tagged`] | 6 | `0x03`, `0x00`, `frame_id`, `y` |
//! | H.264 (both formats, as 1.2.2) | 10 | `0x04`, frame type, `frame_id`, `y`, width, height |
//! | still, [`WireFormat::Tagged`] only | 6 | `0x05`, format (`0x01` PNG), `frame_id`, `y` |
//! | copy-rows, [`WireFormat::Tagged`] only | 6 + 6 per run | `0x06`, `0x00`, `frame_id`, run count, then per run `src_y`, `dst_y`, `height` |
//!
//! Copy-rows (`scroll_detection`, JPEG only) moves rows the viewer already shows: for each run,
//! rows `src_y .. src_y + height` of the picture as it was before this message are drawn at
//! `dst_y` (every run reads the picture before any run of the message is applied). It comes
//! before the stripes of its frame, which then paint only what the move does not explain.
//!
//! A still is a lossless picture of a stripe that stopped changing (`paint_over_lossless`),
//! whatever the codec of its changes; it has its own size inside the image. For an H.264
//! stripe it is not part of the stripe's stream: the decoder never sees it.
//!
//! `frame_id` is the frame counter modulo 65536. The H.264 frame type is `0x01` for an IDR,
//! `0x02` for a non-IDR I frame and `0x00` otherwise; the payload is x264's Annex-B NAL units
//! for one access unit (SPS/PPS repeated on IDRs).

use crate::settings::WireFormat;

/// First byte of a tagged JPEG stripe.
pub const JPEG_TAG: u8 = 0x03;
/// First byte of an H.264 stripe.
pub const H264_TAG: u8 = 0x04;
/// Length of the H.264 header.
pub const H264_HEADER_LEN: usize = 10;
/// First byte of a still stripe (tagged format only).
pub const STILL_TAG: u8 = 0x05;
/// Length of the still header.
pub const STILL_HEADER_LEN: usize = 6;

/// First byte of a copy-rows message (tagged format only).
pub const COPY_ROWS_TAG: u8 = 0x06;
/// Length of the copy-rows header (before its runs).
pub const COPY_ROWS_HEADER_LEN: usize = 6;
/// Bytes per run of a copy-rows message.
pub const COPY_RUN_LEN: usize = 6;

/// One run of a copy-rows message: `height` rows starting at `src_y` of the picture the viewer
/// shows are drawn starting at `dst_y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyRun {
    /// First row copied from (in the picture before the message).
    pub src_y: u32,
    /// First row copied to.
    pub dst_y: u32,
    /// Rows copied.
    pub height: u32,
}

/// Appends a copy-rows message (header and runs) to `out`.
pub fn write_copy_rows(out: &mut Vec<u8>, frame_id: u32, runs: &[CopyRun]) {
    out.extend_from_slice(&[COPY_ROWS_TAG, 0x00]);
    out.extend_from_slice(&(frame_id as u16).to_be_bytes());
    out.extend_from_slice(&(runs.len() as u16).to_be_bytes());
    for run in runs {
        for v in [run.src_y, run.dst_y, run.height] {
            out.extend_from_slice(&(v as u16).to_be_bytes());
        }
    }
}

/// Reads a copy-rows message: its `frame_id` (modulo 65536) and runs. `None` when `data` is not
/// one (wrong tag, or a length that does not match its run count).
pub fn parse_copy_rows(data: &[u8]) -> Option<(u16, Vec<CopyRun>)> {
    let u16_at = |i: usize| u16::from_be_bytes([data[i], data[i + 1]]);
    if data.len() < COPY_ROWS_HEADER_LEN || data[0] != COPY_ROWS_TAG {
        return None;
    }
    let count = u16_at(4) as usize;
    if data.len() != COPY_ROWS_HEADER_LEN + count * COPY_RUN_LEN {
        return None;
    }
    let runs = (0..count)
        .map(|i| {
            let at = COPY_ROWS_HEADER_LEN + i * COPY_RUN_LEN;
            CopyRun {
                src_y: u16_at(at).into(),
                dst_y: u16_at(at + 2).into(),
                height: u16_at(at + 4).into(),
            }
        })
        .collect();
    Some((u16_at(2), runs))
}

/// The image format of a still (byte 1 of its header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StillFormat {
    /// An 8-bit RGB PNG (`0x01`).
    Png = 0x01,
}

/// Appends a still header to `out`.
pub fn write_still_header(out: &mut Vec<u8>, format: StillFormat, frame_id: u32, y: u32) {
    out.extend_from_slice(&[STILL_TAG, format as u8]);
    out.extend_from_slice(&(frame_id as u16).to_be_bytes());
    out.extend_from_slice(&(y as u16).to_be_bytes());
}

/// What kind of picture an H.264 stripe carries (byte 1 of its header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum H264FrameType {
    /// Neither IDR nor I (`0x00`).
    Other = 0x00,
    /// An IDR picture: decodable on its own, with SPS/PPS in front (`0x01`).
    Idr = 0x01,
    /// A non-IDR I picture (`0x02`).
    Intra = 0x02,
}

/// Length of the JPEG header in this format.
pub fn jpeg_header_len(format: WireFormat) -> usize {
    match format {
        WireFormat::Compat => 4,
        WireFormat::Tagged => 6,
    }
}

/// Appends a JPEG stripe header to `out`.
pub fn write_jpeg_header(out: &mut Vec<u8>, format: WireFormat, frame_id: u32, y: u32) {
    if format == WireFormat::Tagged {
        out.extend_from_slice(&[JPEG_TAG, 0x00]);
    }
    out.extend_from_slice(&(frame_id as u16).to_be_bytes());
    out.extend_from_slice(&(y as u16).to_be_bytes());
}

/// Appends an H.264 stripe header to `out`.
pub fn write_h264_header(
    out: &mut Vec<u8>,
    frame_type: H264FrameType,
    frame_id: u32,
    y: u32,
    width: u32,
    height: u32,
) {
    out.push(H264_TAG);
    out.push(frame_type as u8);
    for v in [frame_id, y, width, height] {
        out.extend_from_slice(&(v as u16).to_be_bytes());
    }
}

/// NAL unit types in an Annex-B byte stream (an H.264 stripe's payload), in order: 7 SPS,
/// 8 PPS, 5 IDR slice, 1 non-IDR slice, 6 SEI.
pub fn nal_types(stream: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            if let Some(&header) = stream.get(i + 3) {
                types.push(header & 0x1f);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    types
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_have_documented_layout() {
        let mut v = Vec::new();
        write_jpeg_header(&mut v, WireFormat::Compat, 65537, 300);
        assert_eq!(v, [0, 1, 1, 44]);
        v.clear();
        write_jpeg_header(&mut v, WireFormat::Tagged, 2, 64);
        assert_eq!(v, [3, 0, 0, 2, 0, 64]);
        v.clear();
        write_h264_header(&mut v, H264FrameType::Idr, 7, 128, 1920, 64);
        assert_eq!(v, [4, 1, 0, 7, 0, 128, 7, 128, 0, 64]);
        assert_eq!(v.len(), H264_HEADER_LEN);
        v.clear();
        write_still_header(&mut v, StillFormat::Png, 3, 192);
        assert_eq!(v, [5, 1, 0, 3, 0, 192]);
        assert_eq!(v.len(), STILL_HEADER_LEN);
        v.clear();
        let runs = [
            CopyRun {
                src_y: 13,
                dst_y: 0,
                height: 1000,
            },
            CopyRun {
                src_y: 1040,
                dst_y: 1050,
                height: 30,
            },
        ];
        write_copy_rows(&mut v, 65539, &runs);
        assert_eq!(
            v,
            [6, 0, 0, 3, 0, 2, 0, 13, 0, 0, 3, 232, 4, 16, 4, 26, 0, 30]
        );
        assert_eq!(parse_copy_rows(&v), Some((3, runs.to_vec())));
        assert_eq!(parse_copy_rows(&v[..v.len() - 1]), None);
        assert_eq!(parse_copy_rows(&[5, 1, 0, 3, 0, 192]), None);
    }
}
