//! A clinical image over the upload API, without a browser: hub staff ask,
//! the home's ticket takes pieces, a drop is resumed from what arrived (not
//! from the start), the file at rest is sealed, whoever asked gets a working
//! link, and the record hooks get `image.ready` (and FHIR a `Media`). The
//! browser flow is in the tablet tests.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::recording::{download, sha256_hex};
use crate::support::hooks::EventSink;
use crate::support::ws::{open, Socket};
use crate::support::{Server, ServerOptions};

/// A header a JPEG reader takes (1280x720, baseline), then `len` bytes of
/// noise: what the hub checks of an image is its header and its hash.
fn jpeg(len: usize) -> Vec<u8> {
    let mut j = vec![0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0];
    j.extend([0xff, 0xc0, 0, 11, 8, 0x02, 0xd0, 0x05, 0x00, 1, 1, 0x11, 0]);
    j.extend([0xff, 0xda, 0, 2]);
    let mut x = 0x2545_f491_u32;
    j.extend((0..len).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    }));
    j.extend([0xff, 0xd9]);
    j
}

/// Joins by socket; returns the socket and the participant id.
async fn join(server: &Server, role: &str, name: &str) -> (Socket, String) {
    join_by_link(server, &server.link("img-1", role, name, "1h")).await
}

/// Joins by socket with `link`; returns the socket and the participant id.
async fn join_by_link(server: &Server, link: &str) -> (Socket, String) {
    let token = link.split("t=").nth(1).expect("a join link").to_owned();
    let mut socket = open(server, json!({ "type": "join", "v": 1, "token": token })).await;
    let joined = next_of(&mut socket, "joined").await;
    (socket, joined["participant"].as_str().unwrap().to_owned())
}

/// The next message of type `kind`, skipping others.
async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(m)) = socket.next().await {
            let m: Value = serde_json::from_str(m.to_text().unwrap_or("")).unwrap_or_default();
            if m["type"] == kind {
                return Some(m);
            }
        }
        None
    })
    .await;
    found
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no {kind:?} message"))
}

/// `method path` with a binary body; (status, JSON reply).
async fn send(base_url: &str, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base_url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asked_for_image_survives_a_drop_is_sealed_and_reaches_the_record() {
    let events = EventSink::default();
    let (_config_dir, config) = events.start().await;
    let server = Server::start_with(ServerOptions {
        env: vec![("CARECALL_CONFIG".into(), config.display().to_string())],
        ..ServerOptions::default()
    });
    let (mut home, home_id) = join(&server, "home", "Rose Court").await;
    let (mut clinician, _) = join(&server, "clinician", "Hub clinician").await;

    // A home cannot ask; hub staff can, and only the home gets the ticket.
    let ask = json!({ "type": "ask", "participant": home_id, "what": "photo" });
    home.send(Message::text(ask.to_string())).await.unwrap();
    let refused = next_of(&mut home, "error").await;
    assert_eq!(refused["code"], "not-allowed", "{refused}");
    clinician
        .send(Message::text(ask.to_string()))
        .await
        .unwrap();
    let asked = next_of(&mut home, "asked").await;
    assert_eq!(asked["what"], "photo");
    let ticket = asked["upload"]
        .as_str()
        .expect("an upload ticket")
        .to_owned();

    let image = jpeg(300_000);
    let hash = sha256_hex(&image);
    let total = image.len();
    let at = |offset: usize| {
        format!("/images/uploads/{ticket}?offset={offset}&total={total}&sha256={hash}")
    };
    let piece = 64 * 1024;
    // Two pieces, then the network "drops" mid-upload.
    for offset in [0, piece] {
        let (status, reply) = send(
            &server.base_url,
            "PUT",
            &at(offset),
            &image[offset..offset + piece],
        )
        .await;
        assert_eq!(status, 200, "{reply}");
    }
    let progress = next_of(&mut clinician, "image-progress").await;
    assert_eq!(progress["total"], total);
    // After the drop the page asks how much arrived and goes on from there.
    let (status, state) = send(
        &server.base_url,
        "GET",
        &format!("/images/uploads/{ticket}"),
        b"",
    )
    .await;
    assert_eq!(
        (status, state["received"].as_u64()),
        (200, Some(2 * piece as u64))
    );
    let (status, reply) = send(&server.base_url, "PUT", &at(0), &image[..piece]).await;
    assert_eq!(
        status, 409,
        "a piece already held is not taken again: {reply}"
    );
    assert_eq!(reply["received"], 2 * piece);
    let mut offset = 2 * piece;
    let mut id = None;
    while offset < total {
        let end = (offset + piece).min(total);
        let (status, reply) = send(&server.base_url, "PUT", &at(offset), &image[offset..end]).await;
        assert_eq!(status, 200, "{reply}");
        id = reply["image"].as_str().map(str::to_owned);
        offset = end;
    }
    let id = id.expect("the last piece names the stored image");

    // Whoever asked is shown it through a signed link.
    let shown = next_of(&mut clinician, "image").await;
    assert_eq!(shown["image"], id.as_str());
    assert_eq!(
        (shown["width"].as_u64(), shown["height"].as_u64()),
        (Some(1280), Some(720))
    );
    assert_eq!(shown["sha256"], hash.as_str());
    let url = shown["url"].as_str().unwrap();
    let path = &url[url.find("/images/").unwrap()..];
    let (status, body) = download(&server.base_url, path).await;
    assert_eq!(status, 200);
    assert_eq!(sha256_hex(&body), hash, "the same bytes end to end");
    let forged = path.replace("sig=", "sig=A");
    assert_eq!(download(&server.base_url, &forged).await.0, 403);

    // At rest: sealed, not the image.
    let file = server
        .data_dir
        .path()
        .join("images")
        .join(format!("{id}.img"));
    let on_disk = std::fs::read(&file).expect("the stored file");
    assert!(on_disk.starts_with(b"CCREC"), "sealed");
    assert!(
        !on_disk.windows(64).any(|w| w == &image[1000..1064]),
        "no plaintext on disk"
    );

    // The record: image.ready with a working link, and FHIR's Media.
    let ready = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(e) = events.of_type("image.ready").pop() {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("image.ready delivered");
    let data = &ready["data"];
    assert_eq!(data["taken_by"]["role"], "home");
    assert_eq!(data["asked_by"]["role"], "clinician");
    assert_eq!(data["sha256"], hash.as_str());
    assert_eq!(data["encrypted_at_rest"], true);
    let link = data["download_url"].as_str().unwrap();
    let (status, body) = download(&server.base_url, &link[link.find("/images/").unwrap()..]).await;
    assert_eq!((status, sha256_hex(&body)), (200, hash.clone()));
    let media = events.fhir_resources("Media");
    assert_eq!(media.len(), 1, "{media:?}");
    assert_eq!(media[0].1["width"], 1280);

    let metrics = crate::support::metrics::scrape(&server.base_url).await;
    assert_eq!(
        crate::support::metrics::value(&metrics, "carecall_images_taken_total"),
        Some(1.0)
    );
    assert_eq!(
        crate::support::metrics::value(&metrics, "carecall_image_bytes_total"),
        Some(total as f64)
    );
}

/// Sends `image` under `ticket` in pieces of 64 KiB; returns the stored
/// image's id.
async fn upload(server: &Server, ticket: &str, image: &[u8]) -> String {
    let (total, hash) = (image.len(), sha256_hex(image));
    let mut id = None;
    for offset in (0..total).step_by(64 * 1024) {
        let end = (offset + 64 * 1024).min(total);
        let path = format!("/images/uploads/{ticket}?offset={offset}&total={total}&sha256={hash}");
        let (status, reply) = send(&server.base_url, "PUT", &path, &image[offset..end]).await;
        assert_eq!(status, 200, "{reply}");
        id = reply["image"].as_str().map(str::to_owned);
    }
    id.expect("the last piece names the stored image")
}

/// With the clinical record: a photo from a consultation that saw one
/// resident is filed in that resident's encounter (a `Media` with the
/// encounter's subject in `encounter.completed`'s Bundle); once a second
/// resident is seen in the same consultation, nothing says whose wound it
/// shows, and their encounter gets no photo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_is_filed_with_the_consultations_one_resident() {
    use crate::support::queue::{answered_call, post_as, status, AnsweredCall};
    let events = EventSink::default();
    let (_config_dir, config) = events.start().await;
    let server = Server::start_with(ServerOptions {
        env: vec![("CARECALL_CONFIG".into(), config.display().to_string())],
        ..ServerOptions::default()
    });
    let AnsweredCall {
        token,
        call,
        dr,
        answered,
    } = answered_call(&server, false).await;
    let (mut clinician, _) = join_by_link(&server, answered["join_url"].as_str().unwrap()).await;
    let (_, home_status) = status(&server, &token, call).await;
    let home_link = home_status["join_url"].as_str().expect("the home's link");
    let (mut home, home_id) = join_by_link(&server, home_link).await;

    let ask = json!({ "type": "ask", "participant": home_id, "what": "photo" });
    clinician
        .send(Message::text(ask.to_string()))
        .await
        .unwrap();
    let asked = next_of(&mut home, "asked").await;
    let image = jpeg(100_000);
    let id = upload(&server, asked["upload"].as_str().unwrap(), &image).await;
    next_of(&mut clinician, "image").await;

    let residents = format!("/admin/api/hub/calls/{call}/residents");
    let outcome = json!({
        "disposition": "gp-follow-up", "conveyance_avoided": false, "medicines_prescribed": false,
        "restore2_used": false, "respect": "none", "treatment_plan": false,
        "note": "Skin tear, left forearm.", "care_plan": { "text": "Dress daily.", "actions": [] }
    });
    let mut bundles = Vec::new();
    for (nhs_number, name) in [("9434765919", "Mabel Brown"), ("9434765870", "Edith Green")] {
        let resident =
            json!({ "nhs_number": nhs_number, "name": name, "birth_date": "1938-04-21" });
        let (code, added) = post_as(&server, &dr, &residents, resident).await;
        assert_eq!(code, 201, "{added}");
        let encounter = added["encounter"].as_i64().expect("the encounter");
        let done = format!("/admin/api/encounters/{encounter}/outcome");
        let (code, body) = post_as(&server, &dr, &done, outcome.clone()).await;
        assert_eq!(code, 200, "{body}");
        let wanted = encounter.to_string();
        let bundle = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let found = events.fhir_resources("Bundle").into_iter().find(|(_, b)| {
                    b["entry"].as_array().into_iter().flatten().any(|e| {
                        e["resource"]["resourceType"] == "Encounter"
                            && e["resource"]["identifier"][1]["value"] == wanted.as_str()
                    })
                });
                if let Some((_, b)) = found {
                    return b;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no encounter.completed Bundle for encounter {encounter}"));
        bundles.push(bundle);
    }
    let media = |bundle: &Value| -> Vec<Value> {
        bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["resource"]["resourceType"] == "Media")
            .map(|e| e["resource"].clone())
            .collect()
    };
    let first = media(&bundles[0]);
    assert_eq!(first.len(), 1, "{}", bundles[0]);
    let patient = bundles[0]["entry"][0]["fullUrl"].clone();
    assert_eq!(first[0]["subject"]["reference"], patient);
    assert_eq!(first[0]["identifier"][0]["value"], id.as_str());
    assert_eq!(
        first[0]["content"]["extension"][0]["valueString"],
        sha256_hex(&image).as_str()
    );
    let link = first[0]["content"]["url"].as_str().expect("a link");
    let (code, body) = download(&server.base_url, &link[link.find("/images/").unwrap()..]).await;
    assert_eq!((code, sha256_hex(&body)), (200, sha256_hex(&image)));
    assert_eq!(
        media(&bundles[1]),
        Vec::<Value>::new(),
        "two residents: whose photo?"
    );
}

/// The camera clip's still background (tests/support/browser.rs) as a
/// 32x18 grid of mean luma, away from the rows its noise square crosses.
fn clip_background_grid() -> Vec<Option<f64>> {
    (0..18)
        .flat_map(|row| {
            (0..32).map(move |col| {
                if (6..12).contains(&row) {
                    return None;
                }
                let (x, y) = (col as f64 * 40.0 + 19.5, row as f64 * 40.0 + 19.5);
                // gradient + noise / 16 (mean 7.5)
                Some((x * 160.0 / 1280.0).floor() + (y * 60.0 / 720.0).floor() + 7.5)
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinician_asks_for_a_photo_and_sees_the_cameras_full_frame() {
    use crate::support::browser::Driver;
    let server = Server::start();
    let driver = Driver::start().await.with_camera_clip();
    let home = driver.browser().await;
    home.join(&server.link("photo-1", "home", "Rose Court", "1h"))
        .await;
    let clinician = driver.browser().await;
    clinician
        .join(&server.link("photo-1", "clinician", "Hub clinician", "1h"))
        .await;
    let within = Duration::from_secs(60);
    clinician
        .until(
            "return !!document.querySelector('.photo-ask');",
            within,
            "a Take photo button on the home's tile",
        )
        .await;
    clinician
        .eval("document.querySelector('.photo-ask').click(); return true;")
        .await;
    clinician
        .until(
            "return !!window.carecall.metrics.photoReceived;",
            within,
            "the photo arrives",
        )
        .await;
    let sent = home.metrics().await["photoSent"].clone();
    let got = clinician.metrics().await["photoReceived"].clone();
    println!("sent {sent}\nreceived {got}");
    assert_eq!(got["sha256"], sent["sha256"], "the same bytes end to end");
    assert_eq!(
        (got["width"].as_u64(), got["height"].as_u64()),
        (Some(1280), Some(720)),
        "the camera's full resolution"
    );

    assert_shows_the_cameras_frame(&clinician).await;
}

/// Checks what `clinician`'s page shows of the photo: decoded at full size,
/// and its pixels the camera's (a downscaled luma grid against the clip's).
async fn assert_shows_the_cameras_frame(clinician: &crate::support::browser::Browser) {
    let within = Duration::from_secs(60);
    clinician
        .until(
            "const i = document.getElementById('photo-image'); return i.complete && i.naturalWidth > 0;",
            within,
            "the photo decodes on the clinician's page",
        )
        .await;
    let seen = clinician
        .eval(
            "const i = document.getElementById('photo-image');
             const c = document.createElement('canvas'); c.width = 32; c.height = 18;
             const g = c.getContext('2d'); g.imageSmoothingQuality = 'high';
             g.drawImage(i, 0, 0, 32, 18);
             const d = g.getImageData(0, 0, 32, 18).data; const out = [];
             for (let p = 0; p < d.length; p += 4) out.push((d[p] + d[p + 1] + d[p + 2]) / 3);
             return { w: i.naturalWidth, h: i.naturalHeight, grid: out };",
        )
        .await;
    assert_eq!(
        (seen["w"].as_u64(), seen["h"].as_u64()),
        (Some(1280), Some(720))
    );
    let grid: Vec<f64> = seen["grid"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let expected = clip_background_grid();
    // Correlation with the clip's grid: a colour range or a JPEG's rounding
    // moves every cell alike; another picture does not follow it.
    let correlation = |flip: bool| {
        let pairs: Vec<(f64, f64)> = expected
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let j = if flip { expected.len() - 1 - i } else { i };
                e.map(|e| (grid[j], e))
            })
            .collect();
        let n = pairs.len() as f64;
        let (ma, mb) = (
            pairs.iter().map(|p| p.0).sum::<f64>() / n,
            pairs.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let cov: f64 = pairs.iter().map(|(a, b)| (a - ma) * (b - mb)).sum();
        let va: f64 = pairs.iter().map(|(a, _)| (a - ma).powi(2)).sum();
        let vb: f64 = pairs.iter().map(|(_, b)| (b - mb).powi(2)).sum();
        cov / (va.sqrt() * vb.sqrt())
    };
    let (same, turned) = (correlation(false), correlation(true));
    println!(
        "luma grid's correlation with the clip {same:.3}, with the clip turned round {turned:.3}"
    );
    assert!(same > 0.95, "the photo is the camera's frame: {same:.3}");
    assert!(
        turned < 0.5,
        "the comparison tells frames apart: {turned:.3}"
    );
}

/// Asks `clinician` for a photo from the home and waits for it, the one
/// before it being `previous`; returns what the home sent and what the
/// clinician received, after checking they are the same bytes at the
/// camera's full size.
async fn ask_for_photo(
    clinician: &crate::support::browser::Browser,
    home: &crate::support::browser::Browser,
    previous: Option<&str>,
) -> (Value, Value) {
    let within = Duration::from_secs(150);
    let previous = previous.unwrap_or("");
    clinician
        .eval("document.querySelector('.photo-ask').click(); return true;")
        .await;
    let arrived = format!(
        "const p = window.carecall.metrics.photoReceived; return !!p && p.image !== '{previous}';"
    );
    clinician.until(&arrived, within, "the photo arrives").await;
    let got = clinician.metrics().await["photoReceived"].clone();
    let sent_script = format!(
        "const p = window.carecall.metrics.photoSent; return !!p && p.image === '{}';",
        got["image"].as_str().unwrap_or_default()
    );
    home.until(&sent_script, within, "the home's page has sent it")
        .await;
    let sent = home.metrics().await["photoSent"].clone();
    assert_eq!(got["sha256"], sent["sha256"], "the same bytes end to end");
    assert_eq!(
        (got["width"].as_u64(), got["height"].as_u64()),
        (Some(1280), Some(720)),
        "the camera's full resolution"
    );
    (sent, got)
}

/// A care home on a 300 kbit/s link (both ways, in a network namespace):
/// the photo arrives intact while the call's sound carries on, a 5 s drop
/// during the upload resumes from what the hub holds, and at 1 Mbit/s it
/// goes faster. Prints the upload times docs/images.md quotes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_over_a_300_kbit_home_link_keeps_the_sound_and_survives_a_drop() {
    let lab = crate::support::home_lab::HomeLab::start().await;
    let (server, net) = (&lab.server, &lab.net);
    let home = lab.away.browser().await;
    home.join(&server.link("photo-2", "home", "Rose Court", "1h"))
        .await;
    let clinician = lab.hub.browser().await;
    clinician
        .join(&server.link("photo-2", "clinician", "Hub clinician", "1h"))
        .await;
    clinician
        .until(
            "return !!document.querySelector('.photo-ask');",
            Duration::from_secs(60),
            "a Take photo button on the home's tile",
        )
        .await;
    let settle = Duration::from_secs(6);
    net.limit_uplink(Some(300));
    net.limit_downlink(Some(300));
    // The browsers' estimates come down to the link before the photo.
    tokio::time::sleep(settle).await;

    // 1. At 300 kbit/s: intact, and no gap in the sound either way.
    for b in [&clinician, &home] {
        b.watch_audio_gaps().await;
    }
    let (sent, _) = ask_for_photo(&clinician, &home, None).await;
    assert_shows_the_cameras_frame(&clinician).await;
    let (clinician_gaps, home_gaps) = (
        clinician.longest_audio_gaps().await,
        home.longest_audio_gaps().await,
    );
    println!(
        "300 kbit/s: {} bytes in {:.1} s ({} bytes put); longest audio gaps: clinician <- home {clinician_gaps:?}, home <- clinician {home_gaps:?}",
        sent["total"], sent["ms"].as_f64().unwrap_or(0.0) / 1000.0, sent["bytesPut"]
    );
    assert!(
        sent["total"].as_u64().unwrap_or(0) > 0,
        "a size is reported: {sent}"
    );
    for (who, gaps) in [("clinician", &clinician_gaps), ("home", &home_gaps)] {
        assert_eq!(gaps.len(), 1, "{who} hears one other: {gaps:?}");
        for gap in gaps.values() {
            assert!(
                *gap < 500.0,
                "{who}: a {gap:.0} ms gap in the sound during the upload"
            );
        }
    }

    // 2. The home's network drops for 5 s a quarter of the way in: the
    // upload picks up from what the hub holds.
    let first = sent["image"].as_str().unwrap_or_default().to_owned();
    let drop_during = async {
        home.until(
            "const p = document.getElementById('photo-progress');
             return !p.hidden && p.value >= 0.25 && p.value < 0.75;",
            Duration::from_secs(60),
            "the second upload under way",
        )
        .await;
        let progress = "return document.getElementById('photo-progress').value;";
        net.outage(true);
        let at_drop = home.eval(progress).await.as_f64().unwrap_or(0.0);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let at_return = home.eval(progress).await.as_f64().unwrap_or(1.0);
        net.outage(false);
        (at_drop, at_return)
    };
    let ((sent, _), (at_drop, at_return)) =
        tokio::join!(ask_for_photo(&clinician, &home, Some(&first)), drop_during);
    println!(
        "300 kbit/s with a 5 s drop at {:.0}% (still {:.0}% as it ended): {} bytes in {:.1} s, {} bytes put, {} resumes",
        at_drop * 100.0,
        at_return * 100.0,
        sent["total"],
        sent["ms"].as_f64().unwrap_or(0.0) / 1000.0,
        sent["bytesPut"],
        sent["resumes"]
    );
    assert!(
        at_return < 1.0 && at_return - at_drop < 0.1,
        "the drop stopped the upload half-way: {at_drop:.2} -> {at_return:.2}"
    );
    let (total, put) = (
        sent["total"].as_u64().unwrap_or(0),
        sent["bytesPut"].as_u64().unwrap_or(u64::MAX),
    );
    assert!(
        put < total + 2 * 64 * 1024,
        "a drop costs a few pieces, not the photo: {put} put for {total}"
    );

    // 3. At 1 Mbit/s, for the docs' figure.
    net.limit_uplink(Some(1000));
    net.limit_downlink(Some(1000));
    tokio::time::sleep(settle).await;
    let second = sent["image"].as_str().unwrap_or_default().to_owned();
    let (sent, _) = ask_for_photo(&clinician, &home, Some(&second)).await;
    println!(
        "1 Mbit/s: {} bytes in {:.1} s",
        sent["total"],
        sent["ms"].as_f64().unwrap_or(0.0) / 1000.0
    );
}
