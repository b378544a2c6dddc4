//! `pixelflux serve`: one capture, encoded once, streamed over WebSocket to any number of
//! browser tabs, with the web client embedded in the binary.
//!
//! Wiring: options → display (the user's, our own Xvfb, or the synthetic scene) → a
//! `ScreenCapture` whose callback publishes into the [`hub::Hub`] → per-viewer queues drained
//! by the WebSocket sessions of [`http`]. A supervisor loop restarts the capture when the
//! screen changes size and stops everything on Ctrl-C, SIGTERM, capture failure or the end
//! of the user's command.

pub mod clipboard;
pub mod cursor;
pub mod display;
pub mod http;
pub mod hub;
pub mod input;
pub mod limits;
pub mod remote;
pub mod resize;
pub mod server;
pub mod tls;
pub mod xalive;

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
    /// Address and port to listen on (`HOST:PORT`; a host name is resolved, its first IPv4
    /// address preferred). Anything but loopback needs a token.
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Token the page must present (`?token=`) to watch and control; required off loopback.
    #[arg(long, env = "PIXELFLUX_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A second token that lets a page watch but not send input.
    #[arg(long, env = "PIXELFLUX_VIEW_TOKEN", hide_env_values = true)]
    pub view_token: Option<String>,
    /// Nobody may send input (keyboard, mouse, clipboard): every viewer only watches.
    #[arg(long)]
    pub view_only: bool,
    /// Serve HTTPS with this PEM certificate (chain); needs --tls-key.
    #[arg(long, requires = "tls_key", conflicts_with = "tls_self_signed")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Serve HTTPS with a certificate made at start (its SHA-256 fingerprint is printed, to
    /// compare with the browser's warning page).
    #[arg(long)]
    pub tls_self_signed: bool,
    /// Run the command after `--` in a new private Xvfb even though $DISPLAY is set.
    #[arg(long, conflicts_with_all = ["display", "scene"])]
    pub new_display: bool,
    /// Screen size of the Xvfb started when there is no X display (or with --new-display),
    /// WxH from 64x64 to 3840x2160. Without it the private screen starts at 1280x720 and
    /// follows the size of the page's window; with --region it is fixed, large enough for the
    /// region (at least 1280x720).
    #[arg(long, value_parser = private_screen_size, conflicts_with_all = ["display", "scene"])]
    pub size: Option<RegionArg>,
    /// Do not refresh stripes that stopped changing with a lossless still (PNG); the picture
    /// then stays at the quality of the last JPEG or H.264 encode.
    #[arg(long)]
    pub no_paint_over: bool,
    /// Do not detect scrolling (JPEG): every changed stripe is encoded instead of the page
    /// moving rows it already has (copy-rows).
    #[arg(long)]
    pub no_scroll_detection: bool,
    /// Command to run inside the display (after `--`), e.g. `pixelflux serve -- xterm`.
    /// Serving stops when it exits, and `serve` exits with its status. Without one, a
    /// private Xvfb gets a terminal (xterm) when one is installed.
    #[arg(last = true, conflicts_with = "scene")]
    pub command: Vec<String>,
}

/// `--size`: `WxH` within the sizes the private display can take
/// ([`resize::MIN_SIZE`]..=[`resize::MAX_SIZE`], as a page's resize is clamped to).
fn private_screen_size(text: &str) -> Result<RegionArg, String> {
    let (min, max) = (resize::MIN_SIZE, resize::MAX_SIZE);
    let range = format!("{}x{} to {}x{}", min.0, min.1, max.0, max.1);
    let parsed = text
        .split_once('x')
        .and_then(|(w, h)| Some((w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?)));
    let Some((width, height)) = parsed else {
        return Err(format!("a screen size is WxH, from {range}"));
    };
    if (min.0..=max.0).contains(&width) && (min.1..=max.1).contains(&height) {
        Ok(RegionArg {
            width,
            height,
            x: 0,
            y: 0,
        })
    } else {
        Err(format!(
            "{width}x{height} is out of range: the private screen is {range}"
        ))
    }
}

/// Prints a line for the person who started `serve`. A stdout nobody reads any more (`serve |
/// head -1`, a test that took the URL and closed the pipe) must not end the server, as
/// `println!` would with a panic: write errors are ignored.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Frame rate while no page is visible: the slowest rate settings accept (one tick every
/// 100 s), i.e. next to no capture work; a viewer coming back wakes the capture at once.
const IDLE_FPS: f64 = pixelflux::settings::MIN_TARGET_FPS;

/// The private Xvfb's size until a page asks for another (and with no page).
const DEFAULT_SIZE: (u32, u32) = (1280, 720);

/// How often the supervisor checks the capture, the screen size and the child.
const SUPERVISE_EVERY: Duration = Duration::from_millis(500);

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let nonempty = |t: &Option<String>| t.clone().filter(|t| !t.is_empty());
    let token = nonempty(&args.token);
    let view_token = nonempty(&args.view_token);
    if token.is_some() && token == view_token {
        bail!(
            "--token and --view-token are the same: the view-only link would give control. \
             Pick two different tokens"
        );
    }
    if !args.listen.ip().is_loopback() && token.is_none() && view_token.is_none() {
        bail!(
            "listening on {} (not loopback) needs a token: pass --token or set PIXELFLUX_TOKEN",
            args.listen
        );
    }
    let mut options = args.options.clone();
    let env_display = std::env::var("DISPLAY").ok().filter(|d| !d.is_empty());
    let use_env =
        options.source.scene.is_none() && options.source.display.is_none() && env_display.is_some();
    if use_env && args.size.is_some() && !args.new_display {
        bail!(
            "$DISPLAY is set ({}): --size sets the size of a private display only. Pass \
             --new-display to start one, or leave --size out to stream $DISPLAY at its size",
            env_display.as_deref().unwrap_or_default()
        );
    }
    if use_env && !args.command.is_empty() && !args.new_display {
        bail!(
            "$DISPLAY is set ({}): the command after `--` would open on that screen. Pass \
             --new-display to run it in a new private display, or --display to pick one",
            env_display.as_deref().unwrap_or_default()
        );
    }
    // The port and the certificate first: a port in use or a missing key fails before any
    // Xvfb or command has started.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // (tokio's bind: SO_REUSEADDR, so a restart is not refused for the last run's
    // connections in TIME_WAIT.)
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(args.listen))
        .map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::AddrNotAvailable => {
                    "this machine has no such address: use --listen with one of its own, \
                     e.g. 127.0.0.1:PORT or 0.0.0.0:PORT for all"
                }
                _ => "use --listen HOST:PORT to choose another port",
            };
            anyhow::anyhow!("cannot listen on {}: {e} ({hint})", args.listen)
        })?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::from_files(cert, key)?),
        _ if args.tls_self_signed => Some(tls::self_signed(&openable(args.listen))?),
        _ => None,
    };
    // Dropped (Xvfb stopped) after everything that uses it.
    let mut own_xvfb = None;
    // The private screen follows the page's window (no --size).
    let mut resizable = false;
    if options.source.scene.is_none()
        && options.source.display.is_none()
        && (env_display.is_none() || args.new_display)
    {
        // Started (and tied: it goes with serve, even on SIGKILL) from this, the main,
        // thread: `PR_SET_PDEATHSIG` follows the spawning thread.
        let fixed = fixed_size(args.size, options.source.region);
        let started = match fixed {
            Some((width, height)) => OwnXvfb::start_tied(width, height, None),
            // Resizable up to the limit a page may ask for (docs/serve.md, "Resize").
            None => OwnXvfb::start_tied(DEFAULT_SIZE.0, DEFAULT_SIZE.1, Some(resize::MAX_SIZE)),
        };
        match started {
            Ok(xvfb) => {
                options.source.display = Some(xvfb.display().to_owned());
                resizable = fixed.is_none();
                own_xvfb = Some(xvfb);
            }
            Err(DisplayError::NotInstalled) => {
                tracing::warn!(
                    "no X display and Xvfb is not installed: streaming the built-in synthetic \
                     `typing` scene instead"
                );
                options.source.scene = Some(Scene::Typing);
                let size = args.size.unwrap_or(RegionArg {
                    x: 0,
                    y: 0,
                    width: DEFAULT_SIZE.0,
                    height: DEFAULT_SIZE.1,
                });
                options
                    .source
                    .region
                    .get_or_insert(RegionArg { x: 0, y: 0, ..size });
            }
            Err(e) => return Err(e.into()),
        }
    }
    let display = options.source.display.clone().or(env_display);
    if let (None, Some(name)) = (options.source.scene, &display) {
        // A bad `$DISPLAY` is refused here like a bad --display (clap's check): at once,
        // saying what display names look like.
        crate::options::check_display(name)
            .map_err(|e| crate::options::UsageError(format!("$DISPLAY: {e}")))?;
    }
    // Held until serving ends, so our own connections closing cannot reset the X server.
    let _x_hold = match (&display, options.source.scene) {
        (Some(d), None) => XHold::connect(d)
            .map_err(|e| tracing::debug!("cannot hold a connection to {d}: {e}"))
            .ok(),
        _ => None,
    };
    let mut command = args.command.clone();
    if command.is_empty() && own_xvfb.is_some() {
        // A private screen with nothing on it is of no use: give it a terminal.
        match terminal_command() {
            Some(terminal) => command = terminal,
            None => tracing::warn!(
                "xterm is not installed: the private display stays empty (install xterm, or \
                 give a command after `--`)"
            ),
        }
    }
    let mut app = None;
    if !command.is_empty() {
        let Some(display) = display
            .as_deref()
            .filter(|_| options.source.scene.is_none())
        else {
            bail!("a command to run needs an X display, not a synthetic scene");
        };
        app = Some(
            AppChild::spawn(&command, display)
                .with_context(|| format!("cannot run {:?}", command[0]))?,
        );
    }
    let access = Access {
        token,
        view_token,
        view_only: args.view_only,
        tls,
    };
    let result = runtime.block_on(serve(
        listener,
        access,
        &options,
        !args.no_paint_over,
        !args.no_scroll_detection,
        resizable,
        Supervised {
            app: &mut app,
            xvfb: &mut own_xvfb,
        },
    ));
    // Dropping a runtime waits for its blocking tasks without bound; a screen-size query to
    // an X server that stopped answering never returns, so bound the wait.
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(app);
    drop(own_xvfb);
    // `serve -- cmd` exits with the command's status (128 + signal when it was killed).
    if let Ok(Some(status)) = &result {
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1);
        if code != 0 {
            std::process::exit(code);
        }
    }
    result.map(|_| ())
}

/// The private display's fixed size, or `None` when it follows the page: `--size`, else with
/// `--region` a screen that holds the region (at least the default size), so that no page
/// can shrink the screen under the region captured.
fn fixed_size(size: Option<RegionArg>, region: Option<RegionArg>) -> Option<(u32, u32)> {
    if let Some(size) = size {
        return Some((size.width, size.height));
    }
    let region = region?;
    let end = |at: i32, len: u32| u32::try_from(at).unwrap_or(0).saturating_add(len);
    Some((
        end(region.x, region.width).max(DEFAULT_SIZE.0),
        end(region.y, region.height).max(DEFAULT_SIZE.1),
    ))
}

/// xterm's key bindings for the clipboard, as terminals on desktops have them: Ctrl+Shift+C
/// copies the selected text to the CLIPBOARD (which the page's clipboard gets), Ctrl+Shift+V
/// pastes the CLIPBOARD (which the page's clipboard sets). The `\n` separate the bindings
/// (resource-file syntax); `#override` keeps xterm's others.
const XTERM_CLIPBOARD_KEYS: &str = "XTerm*VT100.translations: #override \\n\
     Ctrl Shift <Key>C: copy-selection(CLIPBOARD) \\n\
     Ctrl Shift <Key>V: insert-selection(CLIPBOARD)";

/// `--listen`: `IP:PORT`, or `HOST:PORT` resolved now (the first IPv4 address, else the
/// first address). Only that one address is listened on.
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    use std::net::ToSocketAddrs;
    if s.starts_with(':') {
        return Err(format!(
            "{s}: give the host too, e.g. 127.0.0.1{s} (this machine only) or 0.0.0.0{s} (all \
             its addresses)"
        ));
    }
    let addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| format!("{s}: expected HOST:PORT or IP:PORT ({e})"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("{s}: the host name has no address"))
}

/// The terminal a private display gets when no command is given: xterm filling the screen
/// (and following it: see `pixelflux_xvfb::set_screen_size`), with the clipboard keys, or
/// `None` when xterm is not installed.
fn terminal_command() -> Option<Vec<String>> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .any(|dir| dir.join("xterm").is_file())
        .then(|| {
            [
                "xterm",
                "-maximized",
                "-fa",
                "Monospace",
                "-fs",
                "11",
                "-xrm",
                XTERM_CLIPBOARD_KEYS,
            ]
            .map(String::from)
            .to_vec()
        })
}

/// The processes `serve` started and watches: the command (or terminal), and the private
/// Xvfb it runs in. Serving stops when either ends.
struct Supervised<'a> {
    app: &'a mut Option<AppChild>,
    xvfb: &'a mut Option<OwnXvfb>,
}

/// Who may connect and control, from the options.
struct Access {
    token: Option<String>,
    view_token: Option<String>,
    view_only: bool,
    tls: Option<tls::Tls>,
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
    follow_screen: bool,
    current: &CurrentCapture,
) -> anyhow::Result<Arc<ScreenCapture>> {
    let config = PipelineConfig::new(settings)
        .context("cannot start the capture")?
        .following_screen(follow_screen);
    // Announced before the first stripe can be published, and again before the first stripe
    // of a new size (the screen followed through RandR): each stripe says its format.
    let mut announced = config.format();
    hub.set_format(&hello_for(&announced));
    let sink = Arc::clone(hub);
    let publish = move |stripe: pixelflux::Stripe| {
        if stripe.format != announced {
            announced = stripe.format;
            tracing::info!(
                "the picture is now {}x{}: new hello",
                announced.width,
                announced.height
            );
            sink.set_format(&hello_for(&announced));
        }
        sink.publish(stripe);
    };
    let capture = Arc::new(
        ScreenCapture::start_config(config, spec, publish).context("cannot start the capture")?,
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

/// The page's URL at `addr`; the token is percent-encoded (`a+b&c` → `a%2Bb%26c`).
fn url(scheme: &str, addr: SocketAddr, token: Option<&str>) -> String {
    match token {
        Some(t) => {
            let t: String = form_urlencoded::byte_serialize(t.as_bytes()).collect();
            format!("{scheme}://{addr}/?token={t}")
        }
        None => format!("{scheme}://{addr}/"),
    }
}

/// Addresses a person can open for a listening address: itself, or for `0.0.0.0`/`::`
/// loopback first and then this machine's other addresses.
fn openable(addr: SocketAddr) -> Vec<SocketAddr> {
    if !addr.ip().is_unspecified() {
        return vec![addr];
    }
    let loopback = if addr.is_ipv4() {
        std::net::IpAddr::from(std::net::Ipv4Addr::LOCALHOST)
    } else {
        std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
    };
    let mut out = vec![SocketAddr::new(loopback, addr.port())];
    if let Ok(ifaces) = nix::ifaddrs::getifaddrs() {
        for iface in ifaces {
            let Some(a) = iface.address else { continue };
            let ip = match (a.as_sockaddr_in(), a.as_sockaddr_in6()) {
                (Some(v4), _) if addr.is_ipv4() => std::net::IpAddr::from(v4.ip()),
                (_, Some(v6)) if addr.is_ipv6() && !v6.ip().is_unicast_link_local() => {
                    std::net::IpAddr::from(v6.ip())
                }
                _ => continue,
            };
            if !ip.is_loopback() && !out.iter().any(|o| o.ip() == ip) {
                out.push(SocketAddr::new(ip, addr.port()));
            }
        }
    }
    out
}

/// Serves until a signal, a capture failure, or the end of the supervised app or private
/// Xvfb (an error); returns the app's exit status when that is what ended it.
async fn serve(
    listener: tokio::net::TcpListener,
    access: Access,
    options: &CaptureOptions,
    paint_over: bool,
    scroll_detection: bool,
    resizable: bool,
    supervised: Supervised<'_>,
) -> anyhow::Result<Option<std::process::ExitStatus>> {
    let (mut settings, spec) = options.resolve()?;
    settings.wire_format = WireFormat::Tagged;
    // A stripe that stopped changing is refreshed once with a lossless still (docs/serve.md).
    settings.use_paint_over_quality = paint_over;
    settings.paint_over_lossless = paint_over;
    // Rows that moved are copied by the page (JPEG; H.264 ignores it).
    settings.scroll_detection = scroll_detection;
    // Without --region the capture follows the screen's size (the core re-reads it after a
    // RandR change and goes on at the new size; the hub re-announces it).
    let follow_screen = options.source.region.is_none() && matches!(spec, SourceSpec::X11 { .. });
    let current: CurrentCapture = Arc::default();
    let cell = Arc::clone(&current);
    let hub = Hub::new(HubConfig::default(), move || {
        if let Some(capture) = cell.lock().unwrap_or_else(|e| e.into_inner()).upgrade() {
            capture.request_refresh();
        }
    });
    let capture = start_capture(&hub, &settings, &spec, follow_screen, &current)?;
    // A display serve did not start: watched for its end while the capture idles.
    let alive = match (&spec, &supervised.xvfb) {
        (SourceSpec::X11 { display }, None) => xalive::XAlive::open(display.as_deref()),
        _ => None,
    };
    let region_of = |s: &CaptureSettings| input::Region {
        x: s.capture_x,
        y: s.capture_y,
        width: s.capture_width,
        height: s.capture_height,
    };
    let injector = match (&spec, access.view_only) {
        (SourceSpec::X11 { display }, false) => {
            match input::Injector::start(display.as_deref(), region_of(&settings)) {
                Ok(injector) => Some(injector),
                Err(e) => {
                    tracing::warn!("no input (view only): {e}");
                    None
                }
            }
        }
        _ => None,
    };
    let clipboard = match (&spec, access.view_only) {
        (SourceSpec::X11 { display }, false) => {
            match clipboard::Clipboard::start(display.as_deref()) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!("no clipboard: {e}");
                    None
                }
            }
        }
        _ => None,
    };
    // The browser draws the pointer unless it is burnt into the picture.
    let cursor = match &spec {
        SourceSpec::X11 { display } if !options.cursor => {
            match cursor::follow(display.as_deref()) {
                Ok(rx) => Some(rx),
                Err(e) => {
                    tracing::warn!("the page cannot draw the pointer: {e}");
                    None
                }
            }
        }
        _ => None,
    };

    let addr = listener.local_addr()?;
    let scheme = if access.tls.is_some() {
        "https"
    } else {
        "http"
    };
    for (i, a) in openable(addr).into_iter().enumerate() {
        let label = if i == 0 { "open" } else { "  or" };
        match (&access.token, &access.view_token) {
            (Some(t), Some(v)) => {
                say!("{label} {}", url(scheme, a, Some(t)));
                say!("  view only: {}", url(scheme, a, Some(v)));
            }
            (t, v) => say!("{label} {}", url(scheme, a, t.as_deref().or(v.as_deref()))),
        }
    }
    if let Some(tls) = &access.tls {
        say!("TLS certificate SHA-256 fingerprint: {}", tls.fingerprint);
    }
    if access.view_only || injector.is_none() {
        say!("(view only: input from the page is not applied)");
    }
    let limits = limits::Limits::for_this_process();
    let state = Arc::new(http::AppState {
        hub: Arc::clone(&hub),
        // Any token configured means requests must carry one (so no `Host` check).
        token: access.token.clone().or_else(|| access.view_token.clone()),
        remote: remote::Remote {
            control_token: access.token,
            view_token: access.view_token,
            view_only: access.view_only,
            injector,
            clipboard,
            cursor,
            display: match &spec {
                SourceSpec::X11 { display } => display.clone(),
                // A synthetic scene (or any source without an X display).
                _ => None,
            },
            resize: match &spec {
                SourceSpec::X11 {
                    display: Some(display),
                } if resizable => Some(resize::Resizer::new(display.clone(), settings.output_mode)),
                _ => None,
            },
            ..Default::default()
        },
        listen: addr,
        limits,
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(
        listener,
        http::router(Arc::clone(&state)),
        limits,
        access.tls.map(|tls| tls.config),
        async {
            let _ = stop_rx.await;
        },
        Duration::from_secs(3),
    ));

    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut tick = tokio::time::interval(SUPERVISE_EVERY);
    let mut exit_status = None;
    // Whether the capture runs at full rate (it starts so; paused when no one watches).
    let mut capturing = true;
    // The region the injector maps pointer positions into (the screen followed).
    let mut input_region = region_of(&settings);
    let mut resizes = state.remote.resize.as_ref().map(resize::Resizer::subscribe);
    let mut resizing: Option<tokio::task::JoinHandle<()>> = None;
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
            () = state.remote.watchers_changed.notified() => {}
            Some(()) = resize::changed(&mut resizes), if resizing.is_none() => {}
        }
        // A size a page asked for: one RandR resize at a time (in the background: it is X
        // I/O), the newest size wins; the capture follows the screen by itself.
        if resizing.as_ref().is_some_and(|r| r.is_finished()) {
            resizing = None;
        }
        if resizing.is_none() {
            if let Some(resizer) = &state.remote.resize {
                resizing = resizer.apply_pending();
            }
        }
        // No capture work while no page is visible; back to full rate as soon as one is.
        let watched = state.remote.watching() > 0;
        if watched != capturing {
            let fps = if watched {
                settings.target_fps
            } else {
                IDLE_FPS
            };
            match capture.control(pixelflux::Control::SetFps(fps)) {
                Ok(()) => {
                    if watched {
                        // No refresh asked here: the page that is watching now asked for its
                        // own when it joined or was shown again (http.rs), and a second
                        // request would re-encode the whole screen once more a second later.
                        tracing::info!("a viewer is watching: capture resumed");
                    } else {
                        tracing::info!("no one is watching: capture paused");
                    }
                    capturing = watched;
                }
                Err(e) => tracing::warn!("cannot change the frame rate: {e}"),
            }
        }
        // The private X server first: when it dies, the app dies of it a moment later.
        if let Some(xvfb) = supervised.xvfb.as_mut() {
            if let Some(status) = xvfb.exited() {
                let name = xvfb.display().to_owned();
                break Err(anyhow::anyhow!(
                    "the private X server (Xvfb {name}) exited ({status}): stopping"
                ));
            }
        }
        if let Some(child) = supervised.app.as_mut() {
            if let Some(status) = child.exited() {
                tracing::info!("{} exited ({status}): stopping", child.name());
                exit_status = Some(status);
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
        if let Some(why) = alive.as_ref().and_then(xalive::XAlive::gone) {
            break Err(anyhow::anyhow!("{why}: stopping"));
        }
        // The pointer maps into the region captured now (it follows the screen).
        let captured = region_of(&capture.settings());
        if captured != input_region {
            input_region = captured;
            if let Some(injector) = &state.remote.injector {
                injector.set_region(captured);
            }
        }
    };
    // Pages stop reconnecting when the command ended the session; otherwise they show why
    // serve stopped (a signal, or the error that ends it) and retry.
    match (&outcome, exit_status.is_some()) {
        (_, true) => hub.close_all(hub::SESSION_ENDED),
        (Ok(()), false) => hub.close_all(hub::SHUTTING_DOWN),
        (Err(e), false) => hub.close_all(&e.to_string()),
    }
    tracing::info!("{} stripes published", hub.published());
    let refused = state
        .remote
        .refused
        .load(std::sync::atomic::Ordering::Relaxed);
    if refused > 0 {
        tracing::info!(
            "{refused} input messages refused (from viewers without control, \
             or a resize of a fixed-size display)"
        );
    }
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
    outcome.map(|()| exit_status)
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
            PipelineConfig::new(&settings)
                .unwrap()
                .layout()
                .stripe_height
        );
        assert!(hello.stripe_height >= pixelflux::settings::DEFAULT_H264_STRIPE_HEIGHT.min(766));
        let full = CaptureSettings {
            h264_fullframe: true,
            ..settings
        };
        let hello = hello_for(&PipelineConfig::new(&full).unwrap().format());
        assert_eq!(hello.stripe_height, 766, "full-frame mode is one stripe");
    }
}
