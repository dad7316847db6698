//! The FHIR R4 rendering of events, for integration engines that speak FHIR
//! (an endpoint with `format = "fhir"`): `consultation.ended` becomes a
//! Bundle holding an `Encounter` (and a `DocumentReference` per recording
//! already finished), `recording.ready` a `DocumentReference` pointing at the
//! download link and at its Encounter. Other events have no FHIR form and go
//! as standard JSON; the content type tells them apart.

use serde_json::{json, Value};

/// Identifier systems: a consultation is an Encounter, a recording a document.
const CONSULTATION: &str = "urn:carecall:consultation";
const RECORDING: &str = "urn:carecall:recording";
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
        _ => return None,
    };
    Some(resource.to_string())
}

fn consultation_id(data: &Value) -> Value {
    json!({ "system": CONSULTATION, "value": data["consultation"].to_string() })
}

fn encounter(d: &Value) -> Value {
    let participants: Vec<Value> = d["participants"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(role, n)| {
            let n = n.as_u64().unwrap_or(0) as usize;
            std::iter::repeat_n(json!({ "type": [{ "text": role }] }), n)
        })
        .collect();
    let mut extension = vec![json!({ "url": OUT_OF_HOURS, "valueBoolean": d["out_of_hours"] })];
    if let Some(q) = d["worst_quality"].as_str() {
        extension.push(json!({ "url": WORST_QUALITY, "valueCode": q }));
    }
    extension.push(json!({ "url": RECONNECTS, "valueInteger": d["reconnects"] }));
    json!({
        "resourceType": "Encounter",
        "identifier": [consultation_id(d)],
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "VR",
            "display": "virtual"
        },
        "serviceType": { "text": "Video consultation with a care home" },
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
}
