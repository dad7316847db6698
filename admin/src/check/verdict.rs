//! What a connectivity check means, in words a care home can act on. The
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
            let why = d.detail.as_deref().unwrap_or("not available");
            notes.push(format!(
                "The {name} cannot be used ({why}): check the browser's permission for this site."
            ));
        }
    }
    match (r.udp.ok, r.tcp.ok, r.turn_tls.ok) {
        (true, _, _) => {}
        (false, true, _) => {
            limit(Outcome::Limited);
            notes
                .push("UDP is blocked on this network: calls will use the slower TCP path.".into());
        }
        (false, false, true) => {
            limit(Outcome::Limited);
            notes.push(
                "Only secure web traffic gets out of this network: calls will be relayed over TLS (port 443), which adds delay. Ask the network's owner to allow UDP to the hub."
                    .into(),
            );
        }
        (false, false, false) => {
            limit(Outcome::Blocked);
            notes.push(
                "Video cannot reach the hub from this network (UDP, TCP and TLS relay all failed). Ask the network's owner to allow the hub's address."
                    .into(),
            );
        }
    }
    if let Some(up) = r.upload_kbps {
        if up < SD_UPLOAD_KBPS {
            limit(Outcome::Limited);
            notes.push(format!(
                "Video will be reduced to the smallest picture: upload {}.",
                mbps(up)
            ));
        } else if up < HD_UPLOAD_KBPS {
            limit(Outcome::Limited);
            notes.push(format!("Video will be reduced: upload {}.", mbps(up)));
        }
    }
    if let Some(down) = r.download_kbps.filter(|&d| d < HD_DOWNLOAD_KBPS) {
        limit(Outcome::Limited);
        notes.push(format!(
            "Others' video will be reduced: download {}.",
            mbps(down)
        ));
    }
    if let Some(loss) = r.loss.filter(|&l| l >= LOSS_NOTICEABLE) {
        limit(Outcome::Limited);
        notes.push(format!(
            "The network loses {:.0}% of packets: expect the picture to break up at times.",
            loss * 100.0
        ));
    }
    let rtt = [&r.udp, &r.tcp, &r.turn_tls]
        .iter()
        .find(|p| p.ok)
        .and_then(|p| p.rtt_ms);
    if let Some(rtt) = rtt.filter(|&t| t >= SLOW_RTT_MS) {
        limit(Outcome::Limited);
        notes.push(format!(
            "Replies from the hub are slow ({rtt} ms): people may talk over each other."
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
        }
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
                "UDP is blocked on this network: calls will use the slower TCP path.",
                "Video will be reduced to the smallest picture: upload 0.6 Mbps."
            ]
        );
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
        assert!(v.notes[0].contains("camera cannot be used (NotAllowedError)"));
    }
}
