//! Where frames come from: an X11 screen region, or a built-in synthetic scene.

mod interrupt;
mod shm;
pub mod synthetic;
pub mod x11;

pub use interrupt::Interrupter;

use crate::config::PipelineConfig;
use crate::frame::Frame;

/// Something that hands out frames of a fixed size, one at a time.
pub trait FrameSource: Send {
    /// Width and height of every frame this source produces.
    fn size(&self) -> (u32, u32);

    /// Grabs the current pixels. The frame stays valid until the next call; overlays may draw
    /// into it.
    ///
    /// # Errors
    /// A [`SourceError`], which ends the capture: for X11, [`SourceError::ServerGone`],
    /// [`SourceError::Refused`], or [`SourceError::RegionNoLongerFits`] after the screen shrank.
    fn grab(&mut self) -> Result<Frame<'_>, SourceError>;

    /// What changed since the previous call, when the source can tell without grabbing
    /// (X11 DAMAGE). The capture then skips the grab when nothing changed, and hashes only the
    /// stripes under changed rows.
    ///
    /// # Errors
    /// A [`SourceError`] as for [`grab`](Self::grab); the default never fails.
    fn damage(&mut self) -> Result<Damage, SourceError> {
        Ok(Damage::Unknown)
    }

    /// The frame last grabbed, as it is now in the buffer (for ticks with no damage).
    fn last_frame(&mut self) -> Frame<'_>;

    /// A handle that makes a blocked `grab` or `damage` fail at once, for a source that waits
    /// on a server (see [`Interrupter`]). `None` (the default): the source never blocks.
    fn interrupter(&self) -> Option<Interrupter> {
        None
    }

    /// Captures `region` (screen coordinates) from the next grab on: buffers resized, the
    /// frames then `region`-sized. Called between frames; on an error nothing changed.
    ///
    /// # Errors
    /// [`SourceError::RegionOutsideScreen`] for a region not wholly on the screen; the
    /// default refuses with [`SourceError::Other`] (a source that cannot change its region).
    fn set_region(&mut self, region: x11::Region) -> Result<(), SourceError> {
        let _ = region;
        Err(SourceError::Other(
            "this source cannot change its region while capturing".into(),
        ))
    }

    /// The size of the whole screen the source reads from, as last seen (an X11 source
    /// learns of RandR changes from the events it reads in [`damage`](Self::damage), and
    /// from a failed grab). `None` (the default): the source has no screen around its
    /// frames.
    fn screen_size(&self) -> Option<(u32, u32)> {
        None
    }
}

/// What a source knows about changes since its last report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Damage {
    /// Anything may have changed.
    Unknown,
    /// Only these row ranges (`start..end`, region coordinates) may have changed; empty means
    /// nothing did.
    Rows(Vec<std::ops::Range<u32>>),
}

impl Damage {
    /// This damage plus `rows` (`None`: anything may have changed).
    pub fn with_rows(self, rows: Option<Vec<std::ops::Range<u32>>>) -> Damage {
        match (self, rows) {
            (Damage::Rows(mut mine), Some(more)) => {
                mine.extend(more);
                Damage::Rows(mine)
            }
            _ => Damage::Unknown,
        }
    }
}

/// Why a source could not start or could not deliver a frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// No X server at that display (or none named at all).
    #[error("cannot connect to X display {}: {reason}", display_name(display.as_deref()))]
    Connect {
        /// The display name tried (`None`: `$DISPLAY`).
        display: Option<String>,
        /// What the connection attempt said.
        reason: String,
    },
    /// A display name that cannot name an X display (its number is out of range).
    #[error("display name {display}: {reason}")]
    BadDisplayName {
        /// The display name as given (or as `$DISPLAY` holds it).
        display: String,
        /// What is wrong with it, naming the valid range.
        reason: String,
    },
    /// The server's setup does not list the screen the display name asks for.
    #[error("the X server has no screen {screen} (it has {screens})")]
    NoScreen {
        /// The screen number from the display name (`:0.N`).
        screen: usize,
        /// How many screens the server has.
        screens: usize,
    },
    /// The region does not fit on the screen.
    #[error(
        "region {width}x{height}+{x}+{y} does not fit on the {screen_width}x{screen_height} screen"
    )]
    RegionOutsideScreen {
        /// Region left edge.
        x: i32,
        /// Region top edge.
        y: i32,
        /// Region width.
        width: u32,
        /// Region height.
        height: u32,
        /// Screen width.
        screen_width: u32,
        /// Screen height.
        screen_height: u32,
    },
    /// The screen shrank (RandR) while capturing, and the fixed region is now partly off it.
    #[error("the region no longer fits the screen ({screen_width}x{screen_height})")]
    RegionNoLongerFits {
        /// The screen's width now.
        screen_width: u32,
        /// The screen's height now.
        screen_height: u32,
    },
    /// The screen's pixel format is not 32-bit BGRX.
    #[error("unsupported screen format: {0}")]
    UnsupportedFormat(String),
    /// The server lacks an extension we need.
    #[error("the X server lacks the {0} extension")]
    MissingExtension(&'static str),
    /// Shared memory could not be set up.
    #[error("shared memory: {0}")]
    SharedMemory(String),
    /// The connection to the X server broke: the server went away (or the socket failed).
    #[error("the X server went away: {0}")]
    ServerGone(String),
    /// The X server answered a request with an error.
    #[error("the X server refused {request}: {kind} error (code {code})")]
    Refused {
        /// The request, such as `ShmGetImage`.
        request: &'static str,
        /// The X error's name, such as `Match` (X11's `BadMatch`).
        kind: String,
        /// The X error code (8 for `BadMatch`).
        code: u8,
    },
    /// A source of the caller's own failed.
    #[error("frame source: {0}")]
    Other(String),
}

/// Which source a capture reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceSpec {
    /// An X11 display (`None`: the `DISPLAY` environment variable).
    X11 {
        /// Display name such as `:0`.
        display: Option<String>,
    },
    /// A synthetic scene of the region's size.
    Synthetic(synthetic::Scene),
}

/// A display name as a person writes it: `:1`, or `$DISPLAY` for the default.
pub(crate) fn display_name(display: Option<&str>) -> &str {
    display.unwrap_or("$DISPLAY")
}

/// `X11 display :1`, `X11 display $DISPLAY`, `scene typing`.
impl std::fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceSpec::X11 { display } => {
                write!(f, "X11 display {}", display_name(display.as_deref()))
            }
            SourceSpec::Synthetic(scene) => write!(f, "scene {scene}"),
        }
    }
}

impl SourceSpec {
    /// The default X display, from `$DISPLAY`.
    pub fn x11_default() -> Self {
        Self::X11 { display: None }
    }

    /// Opens this source for the region `config` captures (already rounded for H.264).
    ///
    /// # Errors
    /// [`SourceError`] when the display cannot be opened or the region does not fit it.
    pub fn open(&self, config: &PipelineConfig) -> Result<Box<dyn FrameSource>, SourceError> {
        let region = config.region();
        Ok(match self {
            SourceSpec::X11 { display } => {
                Box::new(x11::X11Source::open(display.as_deref(), region)?)
            }
            SourceSpec::Synthetic(scene) => {
                let source = synthetic::SyntheticSource::new(*scene, region.width, region.height);
                // The only overlay that draws on a synthetic scene is the watermark.
                Box::new(if config.overlays().watermark.is_some() {
                    source.with_overlays()
                } else {
                    source
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_print_as_written() {
        let err = SourceError::Connect {
            display: Some(":77".into()),
            reason: "refused".into(),
        };
        assert_eq!(err.to_string(), "cannot connect to X display :77: refused");
        let err = SourceError::Connect {
            display: None,
            reason: "unset".into(),
        };
        assert_eq!(
            err.to_string(),
            "cannot connect to X display $DISPLAY: unset"
        );
        let spec = SourceSpec::X11 {
            display: Some(":5".into()),
        };
        assert_eq!(spec.to_string(), "X11 display :5");
        assert_eq!(
            SourceSpec::Synthetic(synthetic::Scene::Typing).to_string(),
            "scene typing"
        );
    }
}
