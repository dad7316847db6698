//! The FHIR R4 rendering of events, for integration engines that speak FHIR
//! (an endpoint with `format = "fhir"`): `consultation.ended` becomes a
//! Bundle holding an `Encounter` (and a `DocumentReference` per recording
//! already finished), `recording.ready` a `DocumentReference` pointing at the
//! download link and at its Encounter, `image.ready` a `Media`. Other events have no FHIR form and go
//! as standard JSON; the content type tells them apart.

use serde_json::{json, Value};

/// Identifier systems: a consultation is an Encounter, a recording a document.
const CONSULTATION: &str = "urn:carecall:consultation";
const RECORDING: &str = "urn:carecall:recording";
const IMAGE: &str = "urn:carecall:image";
/// carecall's own extensions (FHIR has no field for these).
const OUT_OF_HOURS: &str = "urn:carecall:fhir:out-of-hours";
const WORST_QUALITY: &str = "urn:carecall:fhir:worst-quality";
const RECONNECTS: &str = "urn:carecall:fhir:reconnects";
const SHA256: &str = "urn:carecall:fhir:sha256";

/// The FHIR JSON for an event body, or `None` when the event has no FHIR form.
pub(crate) fn render(body: &str) -> Option<String> {
    let event: Value = serde_json::from_str(body).ok()?;
    let data = &event["data"];
    let resource = match event["type"].as_str()? {
        "consultation.ended" => {
            let mut entries = vec![json!({ "resource": encounter(data) })];
            for r in data["recordings"].as_array().into_iter().flatten() {
                entries.push(json!({ "resource": document(r, data) }));
            }
            json!({
                "resourceType": "Bundle",
                "type": "collection",
                "timestamp": event["timestamp"],
                "entry": entries,
            })
        }
        "recording.ready" => document(data, data),
        "image.ready" => media(data),
        "encounter.completed" => completed(&event),
        _ => return None,
    };
    Some(resource.to_string())
}

/// The NHS number's identifier system.
const NHS_NUMBER: &str = "https://fhir.nhs.uk/Id/nhs-number";
/// An encounter's own number (one per resident in a consultation).
const ENCOUNTER: &str = "urn:carecall:encounter";
/// carecall's outcome answers that FHIR has no field for.
const OUTCOME: &str = "urn:carecall:fhir:outcome";
/// SNOMED CT's concept for the NEWS2 score.
const NEWS2_CODE: &str = "1104051000000101";

/// A stable `urn:uuid:` for resource `what` of encounter `n` of consultation
/// `c`: the same event always names its resources alike.
fn urn(what: &str, c: &Value, n: &Value) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, format!("{what}/{c}/{n}").as_bytes());
    let h: String = d.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "urn:uuid:{}-{}-4{}-8{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Text as FHIR narrative XHTML.
fn narrative(text: &str) -> Value {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\n', "<br/>");
    json!({ "status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{escaped}</div>") })
}

/// `encounter.completed` as a Bundle: the Patient, the Encounter with its
/// subject and outcome, the NEWS2 Observation, a Composition with the note
/// and the care plan, a DocumentReference per finished recording and a Media
/// per photo (when the consultation saw this resident alone), every
/// reference resolving inside the Bundle.
fn completed(event: &Value) -> Value {
    let d = &event["data"];
    let (c, n) = (&d["consultation"], &d["encounter"]);
    let patient_ref = urn("Patient", c, n);
    let encounter_ref = urn("Encounter", c, n);
    let r = &d["resident"];
    let o = &d["outcome"];
    let subject = json!({ "reference": patient_ref });
    let patient = json!({
        "resourceType": "Patient",
        "identifier": [{ "system": NHS_NUMBER, "value": r["nhs_number"] }],
        "name": [{ "text": r["name"] }],
        "birthDate": r["birth_date"],
    });
    let outcome_ext: Vec<Value> = [
        "conveyance_avoided",
        "medicines_prescribed",
        "restore2_used",
        "treatment_plan",
    ]
    .iter()
    .map(|k| json!({ "url": format!("{OUTCOME}:{k}"), "valueBoolean": o[*k] }))
    .chain(std::iter::once(
        json!({ "url": format!("{OUTCOME}:respect"), "valueCode": o["respect"] }),
    ))
    .collect();
    let mut period = json!({ "start": d["started_at"] });
    if !d["ended_at"].is_null() {
        period["end"] = d["ended_at"].clone();
    }
    let mut encounter = json!({
        "resourceType": "Encounter",
        "identifier": [consultation_id(d), { "system": ENCOUNTER, "value": n.to_string() }],
        "status": "finished",
        "class": virtual_class(),
        "serviceType": service_type(),
        "subject": subject,
        "participant": encounter_participants(d),
        "period": period,
        "hospitalization": { "dischargeDisposition": { "coding": [{ "system": OUTCOME, "code": o["disposition"] }] } },
        "extension": outcome_ext,
    });
    if let Some(reason) = d["reason"].as_str() {
        encounter["reasonCode"] = json!([{ "text": reason }]);
    }
    let encounter_link = json!({ "reference": encounter_ref });
    let mut entries = vec![
        json!({ "fullUrl": patient_ref, "resource": patient }),
        json!({ "fullUrl": encounter_ref, "resource": encounter }),
    ];
    if let Some(score) = o["news2"].as_u64() {
        entries.push(json!({ "fullUrl": urn("Observation", c, n), "resource": {
            "resourceType": "Observation",
            "status": "final",
            "code": { "coding": [{ "system": "http://snomed.info/sct", "code": NEWS2_CODE,
                                   "display": "Royal College of Physicians National Early Warning Score (NEWS) 2 score" }] },
            "subject": subject,
            "encounter": encounter_link,
            "effectiveDateTime": d["recorded_at"],
            "valueInteger": score,
        }}));
    }
    let plan = &d["care_plan"];
    let mut plan_text = plan["text"].as_str().unwrap_or_default().to_owned();
    for a in plan["actions"].as_array().into_iter().flatten() {
        plan_text.push_str(&format!(
            "\n- {} ({})",
            a["what"].as_str().unwrap_or_default(),
            a["when"].as_str().unwrap_or_default()
        ));
    }
    let section = |title: &str, text: &str| json!({ "title": title, "text": narrative(text) });
    entries.push(json!({ "fullUrl": urn("Composition", c, n), "resource": {
        "resourceType": "Composition",
        "status": if d["amended"] == true { "amended" } else { "final" },
        "type": { "text": "Video consultation note" },
        "subject": subject,
        "encounter": encounter_link,
        "date": d["recorded_at"],
        "author": [{ "display": d["clinician"] }],
        "title": "Video consultation",
        "section": [
            section("Clinical note", d["note"].as_str().unwrap_or_default()),
            section("Onward referrals", o["referrals"].as_str().unwrap_or_default()),
            section("Care plan", &plan_text),
        ],
    }}));
    for rec in d["recordings"].as_array().into_iter().flatten() {
        let mut doc = document(rec, d);
        doc["subject"] = subject.clone();
        doc["context"] = json!({ "encounter": [encounter_link] });
        entries.push(json!({ "fullUrl": urn(&format!("DocumentReference/{}", rec["recording"]), c, n), "resource": doc }));
    }
    for image in d["images"].as_array().into_iter().flatten() {
        let mut photo = media(image);
        photo["subject"] = subject.clone();
        photo["encounter"] = encounter_link.clone();
        entries.push(json!({ "fullUrl": urn(&format!("Media/{}", image["image"]), c, n), "resource": photo }));
    }
    json!({
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": event["timestamp"],
        "entry": entries,
    })
}

/// What is wrong with `bundle` by the FHIR R4 base rules carecall relies
/// on: each resource's required fields are present, and every reference
/// resolves to an entry's `fullUrl` in the Bundle. Empty when it holds.
pub fn bundle_problems(bundle: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if bundle["resourceType"] != "Bundle" || bundle["type"].as_str().is_none() {
        problems.push("not a Bundle with a type".to_owned());
    }
    let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
    let urls: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["fullUrl"].as_str())
        .collect();
    for (i, e) in entries.iter().enumerate() {
        let r = &e["resource"];
        let kind = r["resourceType"].as_str().unwrap_or("?");
        let required: &[&str] = match kind {
            "Patient" => &[],
            "Encounter" => &["status", "class"],
            "Observation" => &["status", "code"],
            "Composition" => &["status", "type", "date", "author", "title"],
            "DocumentReference" | "Media" => &["status", "content"],
            other => {
                problems.push(format!("entry {i}: unexpected resource {other}"));
                &[]
            }
        };
        for field in required {
            if r[*field].is_null() {
                problems.push(format!("entry {i}: {kind} without {field}"));
            }
        }
        if kind == "DocumentReference" && r["content"][0]["attachment"].is_null() {
            problems.push(format!(
                "entry {i}: DocumentReference without an attachment"
            ));
        }
        let mut refs = Vec::new();
        collect_references(r, &mut refs);
        for reference in refs {
            if !urls.contains(&reference.as_str()) {
                problems.push(format!(
                    "entry {i}: {kind} refers to {reference}, not in the Bundle"
                ));
            }
        }
    }
    problems
}

fn collect_references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                match (k.as_str(), x) {
                    ("reference", Value::String(s)) => out.push(s.clone()),
                    _ => collect_references(x, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| collect_references(x, out)),
        _ => {}
    }
}

/// Every carecall Encounter is a virtual one (HL7 ActCode `VR`).
fn virtual_class() -> Value {
    json!({
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
        "code": "VR",
        "display": "virtual"
    })
}

fn service_type() -> Value {
    json!({ "text": "Video consultation with a care home" })
}

fn consultation_id(data: &Value) -> Value {
    json!({ "system": CONSULTATION, "value": data["consultation"].to_string() })
}

/// Who took part, by role: one participant per session.
fn participants_by_role(d: &Value) -> Vec<Value> {
    d["participants"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(role, n)| {
            let n = n.as_u64().unwrap_or(0) as usize;
            std::iter::repeat_n(json!({ "type": [{ "text": role }] }), n)
        })
        .collect()
}

/// The clinician who completed the encounter by name, then everyone in the
/// consultation by role.
fn encounter_participants(d: &Value) -> Vec<Value> {
    let clinician =
        json!({ "type": [{ "text": "clinician" }], "individual": { "display": d["clinician"] } });
    std::iter::once(clinician)
        .chain(participants_by_role(d))
        .collect()
}

fn encounter(d: &Value) -> Value {
    let participants = participants_by_role(d);
    let mut extension = vec![json!({ "url": OUT_OF_HOURS, "valueBoolean": d["out_of_hours"] })];
    if let Some(q) = d["worst_quality"].as_str() {
        extension.push(json!({ "url": WORST_QUALITY, "valueCode": q }));
    }
    extension.push(json!({ "url": RECONNECTS, "valueInteger": d["reconnects"] }));
    json!({
        "resourceType": "Encounter",
        "identifier": [consultation_id(d)],
        "status": "finished",
        "class": virtual_class(),
        "serviceType": service_type(),
        "period": { "start": d["started_at"], "end": d["ended_at"] },
        "length": {
            "value": d["duration_seconds"],
            "unit": "s",
            "system": "http://unitsofmeasure.org",
            "code": "s"
        },
        "participant": participants,
        "extension": extension,
    })
}

/// A recording as a DocumentReference; `call` holds the consultation number.
fn document(r: &Value, call: &Value) -> Value {
    json!({
        "resourceType": "DocumentReference",
        "identifier": [{ "system": RECORDING, "value": r["recording"] }],
        "status": "current",
        "type": { "text": "Video consultation recording" },
        "description": format!("Recording of consultation {} ({} s)", call["consultation"], r["duration_seconds"]),
        "content": [{
            "attachment": {
                "contentType": "video/webm",
                "url": r["download_url"],
                "size": r["size"],
                "title": format!("{}.webm", r["recording"].as_str().unwrap_or("recording")),
                "extension": [{ "url": SHA256, "valueString": r["sha256"] }],
            }
        }],
        "context": { "encounter": [{ "identifier": consultation_id(call) }] },
    })
}

/// `image.ready` as a `Media` resource: the photo, its size, and the
/// consultation's Encounter.
fn media(i: &Value) -> Value {
    json!({
        "resourceType": "Media",
        "identifier": [{ "system": IMAGE, "value": i["image"] }],
        "status": "completed",
        "type": { "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/media-type",
            "code": "image",
            "display": "Image",
        }] },
        "encounter": { "identifier": consultation_id(i) },
        "createdDateTime": i["taken_at"],
        "width": i["width"],
        "height": i["height"],
        "content": {
            "contentType": i["format"],
            "url": i["download_url"],
            "size": i["size"],
            "title": format!("{}.{}", i["image"].as_str().unwrap_or("image"),
                if i["format"] == "image/png" { "png" } else { "jpg" }),
            "extension": [{ "url": SHA256, "valueString": i["sha256"] }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_consultation_is_an_encounter_and_a_recording_a_document() {
        let ended = json!({"type": "consultation.ended", "timestamp": "2026-11-23T22:21:45.000Z",
            "data": {"consultation": 17, "room": "ward-7", "started_at": "2026-11-23T22:01:02.345Z",
                     "ended_at": "2026-11-23T22:21:45.000Z", "duration_seconds": 1242, "out_of_hours": true,
                     "participants": {"clinician": 1, "home": 2}, "worst_quality": "amber", "reconnects": 1,
                     "recordings": []}});
        let bundle: Value = serde_json::from_str(&render(&ended.to_string()).unwrap()).unwrap();
        assert_eq!(bundle["resourceType"], "Bundle");
        let e = &bundle["entry"][0]["resource"];
        assert_eq!(e["resourceType"], "Encounter");
        assert_eq!(e["status"], "finished");
        assert_eq!(e["identifier"][0]["value"], "17");
        assert_eq!(e["period"]["end"], "2026-11-23T22:21:45.000Z");
        assert_eq!(e["participant"].as_array().unwrap().len(), 3);

        let ready = json!({"type": "recording.ready", "timestamp": "2026-11-28T06:48:43.738Z",
            "data": {"consultation": 17, "recording": "ab12", "room": "ward-7", "size": 1381212,
                     "sha256": "3159", "duration_seconds": 20.14,
                     "download_url": "https://hub.example/recordings/ab12/download?expires=1&sig=x"}});
        let doc: Value = serde_json::from_str(&render(&ready.to_string()).unwrap()).unwrap();
        assert_eq!(doc["resourceType"], "DocumentReference");
        assert_eq!(
            doc["content"][0]["attachment"]["url"],
            ready["data"]["download_url"]
        );
        assert_eq!(doc["context"]["encounter"][0]["identifier"]["value"], "17");

        let joined = json!({"type": "participant.joined", "data": {}});
        assert_eq!(render(&joined.to_string()), None);
    }

    #[test]
    fn a_completed_encounter_is_a_bundle_whose_references_resolve() {
        let completed = json!({"type": "encounter.completed", "timestamp": "2026-12-04T10:20:00.000Z",
            "data": {"consultation": 17, "encounter": 3, "clinician": "dr.one",
                     "resident": {"nhs_number": "9434765919", "name": "Mabel Brown", "birth_date": "1938-04-21"},
                     "started_at": "2026-12-04T10:00:00.000Z", "ended_at": null,
                     "outcome": {"disposition": "managed-in-home", "conveyance_avoided": true,
                                 "medicines_prescribed": false, "restore2_used": true, "news2": 3,
                                 "respect": "in-place", "treatment_plan": true, "referrals": ""},
                     "note": "Chest clear <no crackles>", "care_plan": {"text": "Fluids", "actions": [{"what": "Check temperature", "when": "4-hourly"}]},
                     "reason": "chest pain", "participants": {"clinician": 1, "home": 1},
                     "recorded_at": "2026-12-04T10:20:00.000Z", "amended": false,
                     "recordings": [{"recording": "ab12", "size": 10, "sha256": "00", "duration_seconds": 2.0}],
                     "images": [{"image": "cd34", "format": "image/jpeg", "width": 1280, "height": 720, "size": 9,
                                 "sha256": "11", "taken_at": "2026-12-04T10:05:00.000Z",
                                 "download_url": "https://hub.example/images/cd34/download?expires=1&sig=x"}]}});
        let bundle: Value = serde_json::from_str(&render(&completed.to_string()).unwrap()).unwrap();
        assert_eq!(bundle_problems(&bundle), Vec::<String>::new());
        let kinds: Vec<&str> = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["resourceType"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "Patient",
                "Encounter",
                "Observation",
                "Composition",
                "DocumentReference",
                "Media"
            ]
        );
        let encounter = &bundle["entry"][1]["resource"];
        assert_eq!(encounter["reasonCode"][0]["text"], "chest pain");
        assert_eq!(
            encounter["participant"].as_array().unwrap().len(),
            3,
            "{encounter}"
        );
        let patient = &bundle["entry"][0];
        assert_eq!(patient["resource"]["identifier"][0]["system"], NHS_NUMBER);
        assert_eq!(patient["resource"]["identifier"][0]["value"], "9434765919");
        for i in 1..6 {
            let r = &bundle["entry"][i]["resource"];
            assert_eq!(r["subject"]["reference"], patient["fullUrl"], "{r}");
        }
        let photo = &bundle["entry"][5]["resource"];
        assert_eq!(
            photo["encounter"]["reference"],
            bundle["entry"][1]["fullUrl"]
        );
        assert_eq!(
            (&photo["width"], &photo["content"]["url"]),
            (
                &json!(1280),
                &json!("https://hub.example/images/cd34/download?expires=1&sig=x")
            )
        );
        assert!(bundle["entry"][3]["resource"]["section"][0]["text"]["div"]
            .as_str()
            .unwrap()
            .contains("&lt;no crackles&gt;"));

        // The checker finds a reference that does not resolve.
        let mut broken = bundle.clone();
        broken["entry"][1]["resource"]["subject"]["reference"] = json!("urn:uuid:elsewhere");
        assert_eq!(bundle_problems(&broken).len(), 1);
        broken["entry"][2]["resource"]["status"] = Value::Null;
        assert_eq!(bundle_problems(&broken).len(), 2);
    }
}
