//! `pixelflux serve`: one capture, encoded once, streamed over WebSocket to any number of
//! browser tabs, with the web client embedded in the binary.
//!
//! Wiring: options → display (the user's, our own Xvfb, or the synthetic scene) → a
//! `ScreenCapture` whose callback publishes into the [`hub::Hub`] → per-viewer queues drained
//! by the WebSocket sessions of [`http`]. A supervisor loop restarts the capture when the
//! screen changes size and stops everything on Ctrl-C, SIGTERM, capture failure or the end
//! of the user's command.

pub mod display;
pub mod http;
pub mod hub;
pub mod limits;
pub mod server;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use pixelflux::{
    CaptureSettings, PipelineConfig, Scene, ScreenCapture, SourceSpec, StreamFormat, WireFormat,
};
use tokio::signal::unix::{signal, SignalKind};

use crate::options::{CaptureOptions, RegionArg};
use display::{AppChild, DisplayError, OwnXvfb, XHold};
use hub::{Hello, Hub, HubConfig};

/// Options of `pixelflux serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub options: CaptureOptions,
    /// Address and port to listen on. Anything but loopback needs a token.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Token the page must present (`?token=`); required off loopback.
    #[arg(long, env = "PIXELFLUX_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Screen size of the Xvfb started when there is no X display, WxH.
    #[arg(long, default_value = "1280x720")]
    pub size: RegionArg,
    /// Command to run inside the display (after `--`), e.g. `pixelflux serve -- xterm`.
    /// Serving stops when it exits.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// How often the supervisor checks the capture, the screen size and the child.
const SUPERVISE_EVERY: Duration = Duration::from_millis(500);

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let token = args.token.clone().filter(|t| !t.is_empty());
    if !args.listen.ip().is_loopback() && token.is_none() {
        bail!(
            "listening on {} (not loopback) needs a token: pass --token or set PIXELFLUX_TOKEN",
            args.listen
        );
    }
    let mut options = args.options.clone();
    let env_display = std::env::var("DISPLAY").ok().filter(|d| !d.is_empty());
    // Dropped (Xvfb stopped) after everything that uses it.
    let mut own_xvfb = None;
    if options.scene.is_none() && options.display.is_none() && env_display.is_none() {
        match OwnXvfb::start(args.size.width, args.size.height) {
            Ok(xvfb) => {
                options.display = Some(xvfb.display().to_owned());
                own_xvfb = Some(xvfb);
            }
            Err(DisplayError::NotInstalled) => {
                tracing::warn!(
                    "no X display and Xvfb is not installed: streaming the built-in synthetic \
                     `typing` scene instead"
                );
                options.scene = Some(Scene::Typing);
                options.region.get_or_insert(RegionArg {
                    x: 0,
                    y: 0,
                    ..args.size
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    let display = options.display.clone().or(env_display);
    // Held until serving ends, so our own connections closing cannot reset the X server.
    let _x_hold = match (&display, options.scene) {
        (Some(d), None) => XHold::connect(d)
            .map_err(|e| tracing::debug!("cannot hold a connection to {d}: {e}"))
            .ok(),
        _ => None,
    };
    let mut app = None;
    if !args.command.is_empty() {
        let Some(display) = display.as_deref().filter(|_| options.scene.is_none()) else {
            bail!("a command to run needs an X display, not a synthetic scene");
        };
        app = Some(
            AppChild::spawn(&args.command, display)
                .with_context(|| format!("cannot run {:?}", args.command[0]))?,
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(serve(args.listen, token, &options, &mut app));
    // Dropping a runtime waits for its blocking tasks without bound; a screen-size query to
    // an X server that stopped answering never returns, so bound the wait.
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(app);
    drop(own_xvfb);
    result
}

/// The capture now running, for the hub's refresh requests (weak: the supervisor owns it).
type CurrentCapture = Arc<Mutex<Weak<ScreenCapture>>>;

/// The hello for a stream: what the capture encodes (after H.264's rounding to even sizes),
/// as the core reports it, never re-derived from the settings.
fn hello_for(format: &StreamFormat) -> Hello {
    Hello {
        width: format.width,
        height: format.height,
        codec: format.codec,
        fullcolor: format.h264_fullcolor,
        stripe_height: format.stripe_height,
    }
}

/// Announces the format to the viewers, then starts a capture that publishes into the hub.
fn start_capture(
    hub: &Arc<Hub>,
    settings: &CaptureSettings,
    spec: &SourceSpec,
    current: &CurrentCapture,
) -> anyhow::Result<Arc<ScreenCapture>> {
    let config = PipelineConfig::new(settings).context("cannot start the capture")?;
    // Announced before the first stripe can be published.
    hub.set_format(&hello_for(&config.format()));
    let sink = Arc::clone(hub);
    let capture = Arc::new(
        ScreenCapture::start_config(config, spec, move |stripe| sink.publish(stripe))
            .context("cannot start the capture")?,
    );
    *current.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(&capture);
    let format = capture.format();
    tracing::info!(
        "capturing {}x{}+{}+{} from {spec} as {} at {} fps",
        format.width,
        format.height,
        settings.capture_x,
        settings.capture_y,
        format.codec,
        settings.target_fps
    );
    Ok(capture)
}

async fn stop_capture(capture: Arc<ScreenCapture>) -> Option<String> {
    tokio::task::spawn_blocking(move || capture.stop().map(|e| e.to_string()))
        .await
        .unwrap_or_else(|e| Some(format!("stopping the capture: {e}")))
}

/// The URL to open; the token is percent-encoded (`a+b&c` → `a%2Bb%26c`).
fn url(addr: SocketAddr, token: Option<&str>) -> String {
    match token {
        Some(t) => {
            let t: String = form_urlencoded::byte_serialize(t.as_bytes()).collect();
            format!("http://{addr}/?token={t}")
        }
        None => format!("http://{addr}/"),
    }
}

async fn serve(
    listen: SocketAddr,
    token: Option<String>,
    options: &CaptureOptions,
    app: &mut Option<AppChild>,
) -> anyhow::Result<()> {
    let (mut settings, spec) = options.resolve()?;
    settings.wire_format = WireFormat::Tagged;
    let follow_screen = options.region.is_none();
    let display = match &spec {
        SourceSpec::X11 { display } if follow_screen => Some(display.clone()),
        _ => None,
    };
    let current: CurrentCapture = Arc::default();
    let cell = Arc::clone(&current);
    let hub = Hub::new(HubConfig::default(), move || {
        if let Some(capture) = cell.lock().unwrap_or_else(|e| e.into_inner()).upgrade() {
            capture.request_refresh();
        }
    });
    let mut capture = start_capture(&hub, &settings, &spec, &current)?;

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    println!("open {}", url(addr, token.as_deref()));
    let limits = limits::Limits::for_this_process();
    let state = Arc::new(http::AppState {
        hub: Arc::clone(&hub),
        token,
        listen: addr,
        limits,
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(
        listener,
        http::router(state),
        limits,
        async {
            let _ = stop_rx.await;
        },
        Duration::from_secs(3),
    ));

    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut tick = tokio::time::interval(SUPERVISE_EVERY);
    let mut size_query: Option<tokio::task::JoinHandle<_>> = None;
    let outcome: anyhow::Result<()> = loop {
        tokio::select! {
            _ = interrupt.recv() => {
                tracing::info!("interrupted: stopping");
                break Ok(());
            }
            _ = terminate.recv() => {
                tracing::info!("SIGTERM: stopping");
                break Ok(());
            }
            _ = tick.tick() => {}
        }
        if let Some(child) = app.as_mut() {
            if let Some(status) = child.exited() {
                tracing::info!("{} exited ({status}): stopping", child.name());
                break Ok(());
            }
        }
        if !capture.is_running() {
            let why = capture
                .error()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "it stopped".into());
            break Err(anyhow::anyhow!("capture ended: {why}"));
        }
        if let Some(display) = &display {
            // Asked in the background and read on a later round, so a server that stopped
            // answering never blocks this loop (and with it Ctrl-C and SIGTERM).
            if size_query.is_none() {
                let display = display.clone();
                size_query = Some(tokio::task::spawn_blocking(move || {
                    pixelflux::source::x11::screen_size(display.as_deref())
                }));
            }
            let size = match size_query.take_if(|q| q.is_finished()) {
                Some(query) => query.await.ok(),
                None => None,
            };
            if let Some(Ok((w, h))) = size {
                if (w, h) != (settings.capture_width, settings.capture_height) {
                    tracing::info!("the screen is now {w}x{h}: restarting the capture");
                    if let Some(e) = stop_capture(capture).await {
                        tracing::warn!("the old capture ended with: {e}");
                    }
                    settings.capture_width = w;
                    settings.capture_height = h;
                    match start_capture(&hub, &settings, &spec, &current) {
                        Ok(c) => capture = c,
                        Err(e) => {
                            hub.close_all();
                            let _ = stop_tx.send(());
                            return Err(e);
                        }
                    }
                }
            }
        }
    };
    hub.close_all();
    tracing::info!("{} stripes published", hub.published());
    let _ = stop_tx.send(());
    if tokio::time::timeout(Duration::from_secs(4), server)
        .await
        .is_err()
    {
        tracing::warn!("connections did not close within 4 s");
    }
    if let Some(e) = stop_capture(capture).await {
        if outcome.is_ok() {
            bail!("capture failed: {e}");
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hello_announces_the_size_encoded_not_the_size_asked() {
        // H.264 rounds odd sizes down to even: the page must get the stripes' size.
        let settings = CaptureSettings {
            output_mode: pixelflux::Codec::H264,
            capture_width: 1365,
            capture_height: 767,
            ..Default::default()
        };
        let format = PipelineConfig::new(&settings).unwrap().format();
        let hello = hello_for(&format);
        assert_eq!(
            (hello.width, hello.height, hello.codec),
            (1364, 766, pixelflux::Codec::H264)
        );
        assert_eq!(
            hello.stripe_height,
            pixelflux::settings::DEFAULT_H264_STRIPE_HEIGHT
        );
        let full = CaptureSettings {
            h264_fullframe: true,
            ..settings
        };
        let hello = hello_for(&PipelineConfig::new(&full).unwrap().format());
        assert_eq!(hello.stripe_height, 766, "full-frame mode is one stripe");
    }
}
