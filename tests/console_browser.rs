//! The console in a real browser: `agent demo --serve` (one finished call
//! with transcript and stereo recording in its store), chromedriver on a
//! free loopback port, headless Chromium driven over WebDriver
//! (fantoccini): sign in with the demo's admin token, the call history and
//! its filters, the call's detail page (the audio element loads the
//! recording through Range requests, has the call's duration, and a
//! transcript link seeks it; the waveform image draws), an unknown call's
//! not-found page, the live, campaigns, do-not-call and health pages, and
//! sign-out; a live call's transcript turns arriving over the call's
//! event bus while it runs. A screenshot of each page is written under
//! `$CARGO_TARGET_TMPDIR/console-screenshots/`.
//!
//! Skipped, loudly, only when `chromium` or `chromedriver` is not
//! installed (`scripts/test`, which `.ci/run` runs, installs both: Debian
//! packages `chromium` and `chromium-driver`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support_agent;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use callbridge_crm_store::jiff::Timestamp;
use callbridge_crm_store::{ApiToken, CampaignSettings, PersonName, Role};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use support_agent::sipp::Sipp;
use support_agent::{Agent, Opts, bins, process};

/// The first of `names` found on `PATH` (or as an absolute path).
fn installed(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

/// Kills (SIGTERM, then SIGKILL) a child when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "TERM", &self.0.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `agent demo --serve`: its HTTP address and admin token, and its stdout
/// (kept open: the agent prints more after the token, and a closed pipe
/// would end it).
fn demo() -> (
    Reaped,
    std::sync::mpsc::Receiver<String>,
    SocketAddr,
    String,
) {
    let mut child = Command::new(bins::AGENT)
        .args(["demo", "--serve"])
        .env_remove("GEMINI_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = process::stdout_lines(&mut child);
    let child = Reaped(child);
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut http, mut token, mut seen) = (None, None, Vec::new());
    while http.is_none() || token.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no address and token:\n{}", seen.join("\n")));
        if let Some(a) = line.trim().strip_prefix("http           http://") {
            http = Some(a.parse().unwrap());
        }
        if let Some(t) = line.trim().strip_prefix("admin token    ") {
            token = Some(t.to_owned());
        }
        seen.push(line);
    }
    (child, rx, http.unwrap(), token.unwrap())
}

/// chromedriver on a free loopback port, once it accepts connections.
fn chromedriver(binary: &Path) -> (Reaped, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Reaped(child);
    let end = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < end,
            "chromedriver did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

async fn browser(port: u16, chromium: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--autoplay-policy=no-user-gesture-required",
                "--mute-audio",
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session with headless Chromium")
}

fn shots_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert_eq!(&png[1..4], b"PNG");
    std::fs::write(shots_dir().join(format!("{name}.png")), png).unwrap();
}

async fn path(c: &Client) -> String {
    let u = c.current_url().await.unwrap();
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    }
}

/// The audio element's state once its metadata is loaded.
async fn player(c: &Client) -> Value {
    c.execute_async(
        "const done = arguments[arguments.length - 1];
         const a = document.getElementById('player');
         const report = () => done({duration: a.duration, current: a.currentTime,
                                    paused: a.paused, error: a.error && a.error.code});
         if (a.readyState >= 1) report();
         else { a.addEventListener('loadedmetadata', report); a.addEventListener('error', report); }",
        vec![],
    )
    .await
    .unwrap()
}

/// Chromium and chromedriver, or `None` after saying loudly that the test
/// is skipped.
fn tools() -> Option<(PathBuf, PathBuf)> {
    let found = (
        installed(&["chromium", "chromium-browser", "google-chrome"]),
        installed(&["chromedriver"]),
    );
    if let (Some(chromium), Some(driver)) = found {
        return Some((chromium, driver));
    }
    eprintln!(
        "\n*** SKIPPED console_browser: chromium and chromedriver are not installed \
         (apt-get install -y chromium chromium-driver; scripts/test, which .ci/run runs, installs them) ***\n"
    );
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_headless_chromium_from_sign_in_to_sign_out() {
    let Some((chromium, driver)) = tools() else {
        return;
    };
    let (_agent, _stdout, http, token) = demo();
    let (_driver, port) = chromedriver(&driver);
    let c = browser(port, &chromium).await;
    let base = format!("http://{http}");
    let result = drive(&c, &base, &token).await;
    c.close().await.unwrap();
    result.unwrap();
}

type Step = Result<(), fantoccini::error::CmdError>;

async fn sign_in(c: &Client, base: &str, token: &str) -> Step {
    c.goto(&format!("{base}/sign-in")).await?;
    c.find(Locator::Id("token")).await?.send_keys(token).await?;
    c.find(Locator::Id("sign-in")).await?.click().await?;
    c.wait().for_element(Locator::Id("sign-out")).await?;
    Ok(())
}

async fn drive(c: &Client, base: &str, token: &str) -> Result<(), fantoccini::error::CmdError> {
    // Not signed in: the sign-in page.
    c.goto(&format!("{base}/calls")).await?;
    assert_eq!(path(c).await, "/sign-in");
    shot(c, "sign-in").await;
    c.find(Locator::Id("token"))
        .await?
        .send_keys("cbt_wrong")
        .await?;
    c.find(Locator::Id("sign-in")).await?.click().await?;
    let alert = c.wait().for_element(Locator::Css("[role=alert]")).await?;
    assert!(alert.text().await?.contains("not valid"));
    c.find(Locator::Id("token")).await?.send_keys(token).await?;
    c.find(Locator::Id("sign-in")).await?.click().await?;

    // The call history: the demo's one call.
    let call = c.wait().for_element(Locator::Css("a.call")).await?;
    assert_eq!(path(c).await, "/calls");
    shot(c, "calls").await;
    let href = call.attr("href").await?.expect("a link to the call");

    // Filters.
    c.goto(&format!("{base}/calls?direction=outbound")).await?;
    c.find(Locator::Id("no-calls")).await?;
    c.goto(&format!(
        "{base}/calls?direction=inbound&end_reason=caller-hangup"
    ))
    .await?;
    c.find(Locator::Css("a.call")).await?;
    c.find(Locator::Id("filter")).await?.click().await?;
    c.wait().for_element(Locator::Css("a.call")).await?;

    // The call's detail: player, waveform, transcript links.
    c.goto(&format!("{base}{href}")).await?;
    c.wait().for_element(Locator::Id("player")).await?;
    assert_eq!(
        c.find(Locator::Id("end-reason")).await?.text().await?,
        "caller-hangup"
    );
    let facts = c.find(Locator::Css("dl.facts")).await?.text().await?;
    assert!(
        facts.contains("answer to first audio"),
        "the stored latency: {facts}"
    );
    let p = player(c).await;
    let duration = p["duration"].as_f64().unwrap_or_default();
    assert!(duration > 1.0, "the recording's duration: {p}");
    let drawn = c
        .execute(
            "const i = document.querySelector('img.waveform'); return i.complete && i.naturalWidth > 0;",
            vec![],
        )
        .await?;
    assert_eq!(drawn, json!(true), "the waveform image loads");
    let links = c.find_all(Locator::Css("a.seek")).await?;
    assert!(links.len() >= 2, "transcript lines with start times");
    let target = links.last().unwrap();
    let at: f64 = target.attr("data-seek").await?.unwrap().parse().unwrap();
    assert!(at > 0.5 && at < duration, "{at} within {duration}");
    target.click().await?;
    let seeked = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const a = document.getElementById('player');
             const t0 = Date.now();
             (function check() {
               if (!a.seeking && a.currentTime > 0) done({current: a.currentTime, paused: a.paused});
               else if (Date.now() - t0 > 5000) done({current: a.currentTime, paused: a.paused, timeout: true});
               else setTimeout(check, 50);
             })();",
            vec![],
        )
        .await?;
    let now = seeked["current"].as_f64().unwrap_or_default();
    assert!(
        (now - at).abs() < 1.0,
        "the player seeked to {at}: {seeked}"
    );
    assert_eq!(seeked["paused"], json!(false), "and plays: {seeked}");
    shot(c, "detail").await;

    // A call that is not in the store.
    c.goto(&format!(
        "{base}/calls/6f1c1f7e-58a3-4a47-9f53-2b1b2e6f7a10"
    ))
    .await?;
    assert_eq!(
        c.find(Locator::Css("h1")).await?.text().await?,
        "Call not found"
    );
    shot(c, "not-found").await;

    for (page, id) in [
        ("live", "no-live"),
        ("campaigns", "no-campaigns"),
        ("health", "status"),
        ("dnc", "dnc-add"),
    ] {
        c.goto(&format!("{base}/{page}")).await?;
        let found = c.find(Locator::Id(id)).await?;
        if page == "health" {
            assert_eq!(found.text().await?, "ok");
        }
        shot(c, page).await;
    }

    // Sign out: back to the sign-in page, and the cookie no longer works.
    c.find(Locator::Id("sign-out")).await?.click().await?;
    c.wait().for_element(Locator::Id("token")).await?;
    assert_eq!(path(c).await, "/sign-in?signed_out=1");
    c.goto(&format!("{base}/calls")).await?;
    assert_eq!(path(c).await, "/sign-in");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_call_its_transcript_a_csv_import_and_a_viewer_in_headless_chromium() {
    let Some((chromium, driver)) = tools() else {
        return;
    };
    let agent = Agent::start(Opts::default());
    let mut store = agent.store();
    let mut settings = CampaignSettings::new("spring", "mock");
    settings.owner = None;
    let campaign = store.create_campaign(&settings, Timestamp::now()).unwrap();
    let viewer = ApiToken::generate().unwrap();
    store
        .create_user(
            &PersonName::new("watcher").unwrap(),
            Role::Viewer,
            &viewer,
            Timestamp::now(),
        )
        .unwrap();
    drop(store);
    let (_driver, port) = chromedriver(&driver);
    let c = browser(port, &chromium).await;
    let base = format!("http://{}", agent.http);
    let result = drive_live(&c, &base, &agent, campaign.0, &viewer.expose()).await;
    c.close().await.unwrap();
    result.unwrap();
}

async fn drive_live(c: &Client, base: &str, agent: &Agent, campaign: i64, viewer: &str) -> Step {
    sign_in(c, base, &agent.token).await?;
    // A call with speech that lasts ~10 s: the greeting, the caller's
    // sentence, the reply, then the caller hangs up.
    let call = Sipp::uac("uac_speak.xml", agent.sip)
        .pause_ms(5000)
        .within(Duration::from_secs(40))
        .spawn();
    c.goto(&format!("{base}/live")).await?;
    let end = Instant::now() + Duration::from_secs(15);
    let link = loop {
        if let Ok(a) = c.find(Locator::Css("a.call")).await {
            break a;
        }
        assert!(Instant::now() < end, "the call never showed on /live");
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.refresh().await?;
    };
    shot(c, "live-list").await;
    link.click().await?;
    c.wait().for_element(Locator::Id("live-transcript")).await?;
    c.find(Locator::Id("hang-up")).await?;
    // Lines arrive over Server-Sent Events while the call runs.
    let line = c
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("#live-transcript li"))
        .await?;
    assert!(line.text().await?.contains("agent"), "the greeting first");
    // Turns come over the call's event bus as they are published (each
    // carries its event id, which the store's copy has not), not from the
    // store's batches: the page was open before the later turns.
    let bus_line = c
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("#live-transcript li[data-event]"))
        .await?;
    let from_bus = bus_line.attr("data-event").await?.unwrap_or_default();
    let (session, seq) = from_bus.split_once(':').unwrap_or_default();
    assert!(
        session.len() == 36 && seq.parse::<u64>().is_ok(),
        "the line came from the store, not the bus: {from_bus:?}"
    );
    shot(c, "live-call").await;
    // When the call ends the page reloads with the stored call.
    let reason = c
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("end-reason"))
        .await?;
    assert_eq!(reason.text().await?, "caller-hangup");
    assert!(c.find(Locator::Id("live-transcript")).await.is_err());
    call.finish().assert_ok("the live call");

    // A CSV with one bad row: the good rows are imported, the bad one shown.
    c.goto(&format!("{base}/campaigns/{campaign}")).await?;
    // Pasted (typing through WebDriver is slow and drops '+').
    c.execute(
        "document.getElementById('csv').value = arguments[0];",
        vec![json!(
            "phone,name\n+14155550100,Ada\nnot-a-number,Bad\n+14155550101,Grace\n"
        )],
    )
    .await?;
    c.find(Locator::Id("import")).await?.click().await?;
    let errors = c.wait().for_element(Locator::Id("import-errors")).await?;
    let errors = errors.text().await?;
    assert!(errors.contains("line 3: phone"), "{errors}");
    assert!(
        !errors.contains("line 2") && !errors.contains("line 4"),
        "{errors}"
    );
    let report = c.find(Locator::Id("import-report")).await?.text().await?;
    assert!(report.contains("2 new"), "{report}");
    shot(c, "campaign").await;

    // A viewer: no hang-up button, and the hang-up form is refused.
    c.find(Locator::Id("sign-out")).await?.click().await?;
    c.wait().for_element(Locator::Id("token")).await?;
    sign_in(c, base, viewer).await?;
    let status = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const csrf = document.querySelector('input[name=csrf]').value;
             fetch('/calls/6f1c1f7e-58a3-4a47-9f53-2b1b2e6f7a10/hangup', {method: 'POST',
                   headers: {'Content-Type': 'application/x-www-form-urlencoded'},
                   body: 'csrf=' + encodeURIComponent(csrf)}).then(r => done(r.status));",
            vec![],
        )
        .await?;
    assert_eq!(status, json!(403), "a viewer may not hang up");
    c.goto(&format!("{base}/calls")).await?;
    c.find(Locator::Id("no-calls")).await?;
    Ok(())
}
