//! What a connectivity check means, in words a care home can act on: no
//! network terms (the helpdesk's lookup shows each path by name). The
//! thresholds come from the simulcast layers (`docs/adaptation.md`): a
//! camera sends 150 + 500 + 1,500 kbit/s and audio about 64 kbit/s, and a
//! viewer of two people in HD receives about 3.2 Mbit/s.

use serde::{Deserialize, Serialize};

/// One path to the hub, as the browser found it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PathResult {
    /// Media connected over this path.
    pub ok: bool,
    /// Round trip over it, when connected.
    pub rtt_ms: Option<u32>,
    /// Why it failed, as the browser saw it.
    pub error: Option<String>,
}

/// A device check.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceResult {
    /// The browser gave the page the device.
    pub ok: bool,
    /// Its name, or the error.
    pub detail: Option<String>,
}

/// Everything the check page measured.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckResult {
    /// The camera.
    pub camera: DeviceResult,
    /// The microphone.
    pub microphone: DeviceResult,
    /// Media over UDP (the normal path).
    pub udp: PathResult,
    /// Media over TCP to the hub's media port (ICE-TCP).
    pub tcp: PathResult,
    /// Media through the hub's TURN server over TLS.
    pub turn_tls: PathResult,
    /// Download from the hub, kbit/s.
    pub download_kbps: Option<u32>,
    /// Upload to the hub, kbit/s.
    pub upload_kbps: Option<u32>,
    /// Packets lost over the UDP path while sending video (0 to 1).
    pub loss: Option<f32>,
    /// How the upload's losses fell, when enough were lost to tell.
    pub loss_pattern: Option<LossPattern>,
    /// How many packets `loss` was counted over: a few hundred read a
    /// true 5% as anything from about 3% to 7%.
    pub loss_packets: Option<u32>,
    /// Packets of the SFU's download test lost on the way to the tablet
    /// (0 to 1), as the browser counted them; nothing is repaired.
    pub download_loss: Option<f32>,
    /// How the download test's losses fell, when enough were lost to tell.
    pub download_loss_pattern: Option<LossPattern>,
    /// How many packets the download test sent, which `download_loss` is
    /// a share of.
    pub download_loss_packets: Option<u32>,
    /// The download test's interarrival jitter as the browser measured it.
    pub download_jitter_ms: Option<u32>,
    /// Round trip on the media path with nothing else moving: the median
    /// of the page's echo probes over 3 s.
    pub idle_rtt_ms: Option<u32>,
    /// The round trip nine in ten probes stay under while the upload test
    /// runs (after its first 2 s): a router that queues what is sent shows
    /// here.
    pub sending_rtt_ms: Option<u32>,
    /// The same while the download test runs.
    pub receiving_rtt_ms: Option<u32>,
}

/// How losses fall over time: a Wi-Fi signal that drops out loses runs of
/// packets; a busy or poor line loses them here and there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LossPattern {
    /// Here and there.
    Random,
    /// Most losses in runs.
    Bursts,
}

/// Upload that carries all three camera layers and audio, kbit/s.
const HD_UPLOAD_KBPS: u32 = 2_500;
/// Upload that carries the two lower layers and audio.
const SD_UPLOAD_KBPS: u32 = 800;
/// Download for two people in HD.
const HD_DOWNLOAD_KBPS: u32 = 3_500;
/// Loss from which pictures break up.
const LOSS_NOTICEABLE: f32 = 0.03;
/// A round trip from which conversation gets awkward.
const SLOW_RTT_MS: u32 = 300;
/// How far the round trip must rise under load to be the network's
/// queueing rather than the link's own delay.
const LOADED_RISE_MS: u32 = 100;

/// How the check came out: good, with limits, or no calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// HD calls will work.
    Good,
    /// Calls will work, with less: lower video, a slower path.
    Limited,
    /// Calls will not work from here as things are.
    Blocked,
}

/// The verdict: one headline and the findings behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Good, limited or blocked.
    pub outcome: Outcome,
    /// One sentence for the care home.
    pub headline: String,
    /// Each finding, plain language.
    pub notes: Vec<String>,
}

/// What a home can ask when the network itself is at fault.
const ASK_THE_OWNER: &str =
    "To fix this, ask whoever looks after this network to phone the hub's helpdesk, and read them the code below.";
/// What a home can try when the Wi-Fi is weak.
const CLOSER: &str = "Moving the tablet closer to the Wi-Fi router can help.";
/// Loss in runs: the signal drops out.
const BURSTS: &str = " It comes in bursts, as when a Wi-Fi signal drops out: moving the tablet closer to the Wi-Fi router should help.";
/// Loss here and there: weak Wi-Fi or a busy line.
const CLOSER_AFTER_LOSS: &str = " Moving the tablet closer to the Wi-Fi router can help; if it does not, ask whoever looks after this network to phone the hub's helpdesk.";

fn mbps(kbps: u32) -> String {
    format!("{:.1} Mbps", f64::from(kbps) / 1000.0)
}

/// The verdict for `r`.
pub fn verdict(r: &CheckResult) -> Verdict {
    let mut notes = Vec::new();
    let mut outcome = Outcome::Good;
    let mut limit = |o: Outcome| {
        if o as u8 > outcome as u8 {
            outcome = o;
        }
    };
    for (name, d) in [("camera", &r.camera), ("microphone", &r.microphone)] {
        if !d.ok {
            limit(Outcome::Blocked);
            notes.push(format!(
                "The {name} is not working on this page. Allow the {name} for this page (look for the camera symbol near the address bar), close any other app that may be using it, then run the check again."
            ));
        }
    }
    match (r.udp.ok, r.tcp.ok, r.turn_tls.ok) {
        (true, _, _) => {}
        (false, true, _) => {
            limit(Outcome::Limited);
            notes.push(format!(
                "This network blocks the usual way video travels, so calls take a slower way. Calls will work. {ASK_THE_OWNER}"
            ));
        }
        (false, false, true) => {
            limit(Outcome::Limited);
            notes.push(format!(
                "This network lets little more than web pages through, so calls go through the hub's relay, which adds a delay. Calls will work. {ASK_THE_OWNER}"
            ));
        }
        (false, false, false) => {
            limit(Outcome::Blocked);
            notes.push(format!(
                "Video cannot reach the hub from this network. {ASK_THE_OWNER} Until then, try another Wi-Fi network if the home has one."
            ));
        }
    }
    if let Some(up) = r.upload_kbps {
        if up < SD_UPLOAD_KBPS {
            limit(Outcome::Limited);
            notes.push(format!(
                "The hub will see you in a small, blurred picture: this network sends only {}. {CLOSER}",
                mbps(up)
            ));
        } else if up < HD_UPLOAD_KBPS {
            limit(Outcome::Limited);
            notes.push(format!(
                "The hub will see you in a less sharp picture: this network sends {}. {CLOSER}",
                mbps(up)
            ));
        }
    }
    if let Some(down) = r.download_kbps.filter(|&d| d < HD_DOWNLOAD_KBPS) {
        limit(Outcome::Limited);
        notes.push(format!(
            "You will see the hub in a less sharp picture: this network receives {}. {CLOSER}",
            mbps(down)
        ));
    }
    let losses = [
        (
            r.loss,
            r.loss_pattern,
            "what this tablet sends",
            "the picture and sound the hub gets",
        ),
        (
            r.download_loss,
            r.download_loss_pattern,
            "what the hub sends",
            "the hub's picture and sound",
        ),
    ];
    for (loss, pattern, what, whose) in losses {
        let Some(loss) = loss.filter(|&l| l >= LOSS_NOTICEABLE) else {
            continue;
        };
        limit(Outcome::Limited);
        let why = match pattern {
            Some(LossPattern::Bursts) => BURSTS,
            _ => CLOSER_AFTER_LOSS,
        };
        notes.push(format!(
            "This network loses some of {what} ({:.0}%): {whose} may break up at times.{why}",
            loss * 100.0
        ));
    }
    let rtt = r.idle_rtt_ms.or_else(|| {
        [&r.udp, &r.tcp, &r.turn_tls]
            .iter()
            .find(|p| p.ok)
            .and_then(|p| p.rtt_ms)
    });
    if let Some(rtt) = rtt.filter(|&t| t >= SLOW_RTT_MS) {
        limit(Outcome::Limited);
        notes.push(format!(
            "There is a delay on this network ({rtt} ms there and back): leave a moment before answering, or people may talk over each other."
        ));
    }
    let idle = rtt.unwrap_or(0);
    for (loaded, while_) in [
        (r.sending_rtt_ms, "sends"),
        (r.receiving_rtt_ms, "receives"),
    ] {
        let Some(loaded) = loaded.filter(|&t| t >= SLOW_RTT_MS && t >= idle + LOADED_RISE_MS)
        else {
            continue;
        };
        limit(Outcome::Limited);
        notes.push(format!(
            "While this tablet {while_} a lot, the delay rises to {loaded} ms there and back: the network holds things back while busy, so calls lag and people talk over each other whenever something else on it is busy (backups, videos, updates). {ASK_THE_OWNER}"
        ));
    }
    let headline = match outcome {
        Outcome::Good => "HD video will work.".to_owned(),
        Outcome::Limited => "Calls will work, with limits (see below).".to_owned(),
        Outcome::Blocked => "Video calls will not work from here yet (see below).".to_owned(),
    };
    Verdict {
        outcome,
        headline,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> CheckResult {
        let path = PathResult {
            ok: true,
            rtt_ms: Some(20),
            error: None,
        };
        let device = DeviceResult {
            ok: true,
            detail: Some("fake".into()),
        };
        CheckResult {
            camera: device.clone(),
            microphone: device,
            udp: path.clone(),
            tcp: path.clone(),
            turn_tls: path,
            download_kbps: Some(20_000),
            upload_kbps: Some(10_000),
            loss: Some(0.0),
            loss_pattern: None,
            loss_packets: Some(800),
            download_loss: Some(0.0),
            download_loss_pattern: None,
            download_loss_packets: Some(1_000),
            download_jitter_ms: Some(2),
            idle_rtt_ms: Some(20),
            sending_rtt_ms: Some(30),
            receiving_rtt_ms: Some(25),
        }
    }

    #[test]
    fn a_delay_that_rises_under_load_is_named() {
        let mut r = good();
        r.sending_rtt_ms = Some(1_900);
        let v = verdict(&r);
        assert_eq!(v.outcome, Outcome::Limited);
        assert_eq!(v.notes.len(), 1, "{:?}", v.notes);
        assert!(
            v.notes[0].starts_with("While this tablet sends a lot, the delay rises to 1900 ms"),
            "{:?}",
            v.notes
        );
        // A far link (350 ms idle) that barely moves under load is named
        // once, as the delay it is.
        r.idle_rtt_ms = Some(350);
        r.sending_rtt_ms = Some(380);
        let v = verdict(&r);
        assert_eq!(v.notes.len(), 1, "{:?}", v.notes);
        assert!(v.notes[0].starts_with("There is a delay on this network (350 ms"));
    }

    #[test]
    fn download_loss_is_named_with_its_pattern() {
        let mut r = good();
        r.download_loss = Some(0.02);
        assert_eq!(verdict(&r).outcome, Outcome::Good, "2% goes unnoticed");
        r.download_loss = Some(0.05);
        let v = verdict(&r);
        assert_eq!(v.outcome, Outcome::Limited);
        assert!(v.notes[0].starts_with("This network loses some of what the hub sends (5%)"));
        assert!(
            v.notes[0].contains("ask whoever looks after"),
            "{:?}",
            v.notes
        );
        r.download_loss_pattern = Some(LossPattern::Bursts);
        let v = verdict(&r);
        assert!(v.notes[0].contains("in bursts"), "{:?}", v.notes);
    }

    #[test]
    fn a_good_network_gets_hd() {
        let v = verdict(&good());
        assert_eq!(v.outcome, Outcome::Good);
        assert_eq!(v.headline, "HD video will work.");
        assert!(v.notes.is_empty());
    }

    #[test]
    fn blocked_udp_and_a_thin_upload_are_named() {
        let mut r = good();
        r.udp = PathResult {
            ok: false,
            rtt_ms: None,
            error: Some("no connection within 10 s".into()),
        };
        r.upload_kbps = Some(600);
        let v = verdict(&r);
        assert_eq!(v.outcome, Outcome::Limited);
        assert_eq!(
            v.notes,
            [
                format!("This network blocks the usual way video travels, so calls take a slower way. Calls will work. {ASK_THE_OWNER}"),
                format!("The hub will see you in a small, blurred picture: this network sends only 0.6 Mbps. {CLOSER}"),
            ]
        );
    }

    #[test]
    fn no_note_uses_a_network_term() {
        let path = |ok| PathResult {
            ok,
            rtt_ms: Some(450),
            error: Some("ICE failed".into()),
        };
        let mut notes = Vec::new();
        for (udp, tcp, relay) in [
            (false, true, true),
            (false, false, true),
            (false, false, false),
        ] {
            let mut r = good();
            (r.udp, r.tcp, r.turn_tls) = (path(udp), path(tcp), path(relay));
            // No echo probe ran: the delay comes from the path that worked.
            r.idle_rtt_ms = None;
            notes.extend(verdict(&r).notes);
        }
        for up in [600, 1_500] {
            let r = CheckResult {
                camera: DeviceResult::default(),
                microphone: DeviceResult::default(),
                upload_kbps: Some(up),
                download_kbps: Some(1_000),
                loss: Some(0.1),
                loss_pattern: Some(LossPattern::Random),
                download_loss: Some(0.1),
                download_loss_pattern: Some(LossPattern::Bursts),
                udp: path(true),
                idle_rtt_ms: Some(450),
                sending_rtt_ms: Some(1_900),
                ..good()
            };
            notes.extend(verdict(&r).notes);
        }
        assert_eq!(
            notes.len(),
            5 + 2 * 8,
            "every note, once per case: {notes:#?}"
        );
        for note in &notes {
            for term in [
                "UDP", "TCP", "TLS", "TURN", "ICE", "packet", "codec", "port", "Error",
            ] {
                assert!(!note.contains(term), "{term:?} in {note:?}");
            }
        }
    }

    #[test]
    fn nothing_through_or_no_camera_is_blocked() {
        let mut r = good();
        r.udp.ok = false;
        r.tcp.ok = false;
        r.turn_tls.ok = false;
        assert_eq!(verdict(&r).outcome, Outcome::Blocked);
        let mut r = good();
        r.camera = DeviceResult {
            ok: false,
            detail: Some("NotAllowedError".into()),
        };
        let v = verdict(&r);
        assert_eq!(v.outcome, Outcome::Blocked);
        assert!(v.notes[0].starts_with("The camera is not working on this page."));
        assert!(!v.notes[0].contains("NotAllowedError"), "no browser terms");
    }
}
