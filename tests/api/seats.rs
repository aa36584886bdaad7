use std::time::Duration;

use serde_json::json;
use talkconnect::events::DomainEvent;
use talkconnect::rooms::RoomError;
use talkconnect::rooms::rules::SeatChange;

use crate::helpers::{Backend, TestApp};
use crate::on_every_backend;

on_every_backend!(mic_camera_and_hand_are_stored_on_the_seat_and_published);

async fn mic_camera_and_hand_are_stored_on_the_seat_and_published(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let host = app.guest("Host").await;
    let guest = app.guest("Guest").await;
    let outsider = app.guest("Outsider").await;
    let room = app.room(&host, json!({"title": "Seats"})).await;
    app.join(room, &guest).await;
    let rooms = &app.state.rooms;
    let mut rx = app.state.bus.subscribe();

    rooms
        .change_seat(room, guest.id, guest.id, SeatChange::Mic { muted: true })
        .await
        .unwrap();
    rooms
        .change_seat(room, guest.id, guest.id, SeatChange::Camera { off: true })
        .await
        .unwrap();
    rooms
        .change_seat(room, guest.id, guest.id, SeatChange::Hand { raised: true })
        .await
        .unwrap();
    // The same state again publishes nothing.
    rooms
        .change_seat(room, guest.id, guest.id, SeatChange::Mic { muted: true })
        .await
        .unwrap();

    let (_, detail) = app.get(&format!("/api/rooms/{room}"), None).await;
    let seat = detail["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["userId"] == guest.id.to_string())
        .unwrap()
        .clone();
    assert_eq!(
        (
            seat["isMuted"].clone(),
            seat["isVideoOff"].clone(),
            seat["handRaised"].clone()
        ),
        (json!(true), json!(true), json!(true))
    );

    let mut published = Vec::new();
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        published.push(event.as_ref().clone());
    }
    let changes: Vec<SeatChange> = published
        .iter()
        .filter_map(|e| match e {
            DomainEvent::SeatChanged {
                user_id, change, ..
            } if *user_id == guest.id => Some(*change),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            SeatChange::Mic { muted: true },
            SeatChange::Camera { off: true },
            SeatChange::Hand { raised: true }
        ]
    );

    // Only a host or co-host acts on someone else's seat, and only to lower a hand.
    let err = rooms
        .change_seat(room, guest.id, host.id, SeatChange::Hand { raised: false })
        .await
        .unwrap_err();
    assert!(matches!(err, RoomError::NotCohost), "{err:?}");
    let err = rooms
        .change_seat(room, host.id, guest.id, SeatChange::Mic { muted: false })
        .await
        .unwrap_err();
    assert!(matches!(err, RoomError::NotHost), "{err:?}");
    rooms
        .change_seat(room, host.id, guest.id, SeatChange::Hand { raised: false })
        .await
        .unwrap();
    let err = rooms
        .change_seat(
            room,
            outsider.id,
            outsider.id,
            SeatChange::Hand { raised: true },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RoomError::NotInRoom), "{err:?}");
    let err = rooms
        .change_seat(
            room,
            host.id,
            outsider.id,
            SeatChange::Hand { raised: false },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RoomError::ParticipantNotFound), "{err:?}");

    // Leaving lowers the hand; a rejoin starts fresh.
    rooms
        .change_seat(room, guest.id, guest.id, SeatChange::Hand { raised: true })
        .await
        .unwrap();
    app.post_empty(&format!("/api/rooms/{room}/leave"), Some(&guest.token))
        .await;
    let (_, joined) = app.join(room, &guest).await;
    assert_eq!(joined["participant"]["handRaised"], false);
    assert_eq!(joined["participant"]["isMuted"], false);
}
