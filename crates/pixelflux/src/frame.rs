//! Pixel buffers as they travel through the pipeline: 32-bit BGRX rows (blue in the lowest
//! byte, the fourth byte unused), as X servers at depth 24/32 deliver them.

/// Bytes per pixel of every frame in the pipeline.
pub const BYTES_PER_PIXEL: usize = 4;

/// A frame a source has just grabbed; overlays draw into it before change detection.
#[derive(Debug)]
pub struct Frame<'a> {
    /// `height` rows of `stride` bytes; each row starts with `width` BGRX pixels.
    pub data: &'a mut [u8],
    /// Width in pixels.
    pub width: u32,
    /// Height in rows.
    pub height: u32,
    /// Bytes from one row to the next (at least `width * 4`).
    pub stride: usize,
}

impl Frame<'_> {
    /// A read-only view of the whole frame.
    pub fn view(&self) -> FrameRef<'_> {
        FrameRef {
            data: self.data,
            width: self.width,
            height: self.height,
            stride: self.stride,
        }
    }
}

/// A read-only view of BGRX pixels (a whole frame or a band of its rows).
#[derive(Debug, Clone, Copy)]
pub struct FrameRef<'a> {
    /// `height` rows of `stride` bytes (the last row may stop after its pixels).
    pub data: &'a [u8],
    /// Width in pixels.
    pub width: u32,
    /// Height in rows.
    pub height: u32,
    /// Bytes from one row to the next.
    pub stride: usize,
}

impl<'a> FrameRef<'a> {
    /// Rows `y .. y + height` as a frame of their own. The caller keeps the band inside.
    pub fn rows(&self, y: u32, height: u32) -> FrameRef<'a> {
        debug_assert!(y + height <= self.height);
        let start = y as usize * self.stride;
        let end = start + self.band_len(height);
        FrameRef {
            data: &self.data[start..end],
            width: self.width,
            height,
            stride: self.stride,
        }
    }

    /// The bytes of row `y` holding pixels (no padding).
    pub fn row(&self, y: u32) -> &'a [u8] {
        let start = y as usize * self.stride;
        &self.data[start..start + self.width as usize * BYTES_PER_PIXEL]
    }

    /// Bytes spanned by `height` rows: the last row needs only its pixels.
    fn band_len(&self, height: u32) -> usize {
        if height == 0 {
            0
        } else {
            (height as usize - 1) * self.stride + self.width as usize * BYTES_PER_PIXEL
        }
    }

    /// The pixel at (x, y) as `[b, g, r, x]`.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let i = y as usize * self.stride + x as usize * BYTES_PER_PIXEL;
        [
            self.data[i],
            self.data[i + 1],
            self.data[i + 2],
            self.data[i + 3],
        ]
    }
}

/// A frame that owns its pixels (synthetic scenes, tests, copies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFrame {
    /// Tightly packed BGRX rows (`stride == width * 4`).
    pub data: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in rows.
    pub height: u32,
}

impl OwnedFrame {
    /// A black frame.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            data: vec![0; width as usize * height as usize * BYTES_PER_PIXEL],
            width,
            height,
        }
    }

    /// Bytes per row.
    pub fn stride(&self) -> usize {
        self.width as usize * BYTES_PER_PIXEL
    }

    /// A read-only view.
    pub fn view(&self) -> FrameRef<'_> {
        FrameRef {
            data: &self.data,
            width: self.width,
            height: self.height,
            stride: self.stride(),
        }
    }

    /// A mutable view, as a source hands it out.
    pub fn as_frame(&mut self) -> Frame<'_> {
        let stride = self.stride();
        Frame {
            data: &mut self.data,
            width: self.width,
            height: self.height,
            stride,
        }
    }

    /// Copies a view into a packed owned frame.
    pub fn from_view(view: FrameRef<'_>) -> Self {
        let mut data = Vec::with_capacity(view.width as usize * view.height as usize * 4);
        for y in 0..view.height {
            data.extend_from_slice(view.row(y));
        }
        Self {
            data,
            width: view.width,
            height: view.height,
        }
    }
}
