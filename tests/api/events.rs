use std::time::Duration;

use serde_json::json;
use talkconnect::events::{DomainEvent, EndReason};
use tokio::sync::broadcast::Receiver;

use crate::helpers::{Backend, TestApp};
use crate::on_every_backend;

on_every_backend!(room_changes_are_published_on_the_bus_after_commit);

async fn next(rx: &mut Receiver<std::sync::Arc<DomainEvent>>) -> DomainEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event within 10 s")
        .expect("the bus is open")
        .as_ref()
        .clone()
}

async fn room_changes_are_published_on_the_bus_after_commit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut rx = app.state.bus.subscribe();
    let host = app.guest("Host").await;
    let guest = app.guest("Guest").await;
    let other = app.guest("Other").await;

    let room = app.room(&host, json!({"title": "Watched"})).await;
    match next(&mut rx).await {
        DomainEvent::RoomCreated { room: view } => {
            assert_eq!(view.id, room);
            assert_eq!(view.participant_count, 1);
        }
        e => panic!("expected RoomCreated, got {e:?}"),
    }

    app.join(room, &guest).await;
    match next(&mut rx).await {
        DomainEvent::ParticipantJoined {
            room_id,
            participant,
        } => {
            assert_eq!(room_id, room);
            assert_eq!(participant.user_id, guest.id);
        }
        e => panic!("expected ParticipantJoined, got {e:?}"),
    }
    match next(&mut rx).await {
        DomainEvent::RoomUpdated { room: view } => assert_eq!(view.participant_count, 2),
        e => panic!("expected RoomUpdated, got {e:?}"),
    }
    // Joining again changes nothing and publishes nothing; the next event is the chat.
    app.join(room, &guest).await;
    app.post(
        &format!("/api/rooms/{room}/chat"),
        Some(&guest.token),
        json!({"message": "hello"}),
    )
    .await;
    match next(&mut rx).await {
        DomainEvent::ChatMessagePosted { message } => {
            assert_eq!(message.message, "hello");
            assert_eq!(message.sender.id, guest.id);
        }
        e => panic!("expected ChatMessagePosted, got {e:?}"),
    }

    app.join(room, &other).await;
    next(&mut rx).await;
    next(&mut rx).await;
    app.post_empty(
        &format!("/api/rooms/{room}/kick/{}", other.id),
        Some(&host.token),
    )
    .await;
    assert!(
        matches!(next(&mut rx).await, DomainEvent::ParticipantKicked { user_id, .. } if user_id == other.id)
    );
    assert!(
        matches!(next(&mut rx).await, DomainEvent::RoomUpdated { room: ref v } if v.participant_count == 2)
    );

    app.post_empty(&format!("/api/rooms/{room}/leave"), Some(&host.token))
        .await;
    match next(&mut rx).await {
        DomainEvent::ParticipantLeft {
            user_id,
            new_host_id,
            ..
        } => {
            assert_eq!(user_id, host.id);
            assert_eq!(new_host_id, Some(guest.id));
        }
        e => panic!("expected ParticipantLeft, got {e:?}"),
    }
    assert!(
        matches!(next(&mut rx).await, DomainEvent::RoomUpdated { room: ref v } if v.host.id == guest.id)
    );

    app.post_empty(&format!("/api/rooms/{room}/leave"), Some(&guest.token))
        .await;
    assert!(matches!(
        next(&mut rx).await,
        DomainEvent::ParticipantLeft { .. }
    ));
    match next(&mut rx).await {
        DomainEvent::RoomEnded { room: view, reason } => {
            assert_eq!(view.id, room);
            assert_eq!(reason, EndReason::LastLeft);
        }
        e => panic!("expected RoomEnded, got {e:?}"),
    }

    let second = app.room(&host, json!({"title": "Closed by host"})).await;
    next(&mut rx).await;
    app.delete(&format!("/api/rooms/{second}"), Some(&host.token))
        .await;
    assert!(matches!(
        next(&mut rx).await,
        DomainEvent::RoomEnded {
            reason: EndReason::HostEnded,
            ..
        }
    ));

    // Events serialize for other replicas as tagged camelCase JSON.
    let wire = serde_json::to_value(DomainEvent::ParticipantKicked {
        room_id: room,
        user_id: other.id,
    })
    .unwrap();
    assert_eq!(
        wire,
        json!({"type": "participantKicked", "roomId": room, "userId": other.id})
    );
}
