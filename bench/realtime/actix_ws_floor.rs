//! Baseline for the idle-memory benchmark: a bare actix-web + actix-ws server that answers the
//! load generator's handshake ("0{..}", then "40{sid}" to "40") and holds the connection, with
//! no Engine.IO / Socket.IO state. What it costs per socket is the floor under our layer.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

async fn ws(req: HttpRequest, body: web::Payload) -> actix_web::Result<HttpResponse> {
    let (response, mut session, mut stream) = actix_ws::handle(&req, body)?;
    actix_web::rt::spawn(async move {
        let _ = session.text(r#"0{"sid":"x"}"#).await;
        while let Some(Ok(msg)) = stream.recv().await {
            if let actix_ws::Message::Text(text) = msg {
                if &*text == "40" {
                    let _ = session.text(r#"40{"sid":"abcdefghijklmnopqrst"}"#).await;
                }
            }
        }
    });
    Ok(response)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(3200);
    HttpServer::new(|| App::new().route("/socket.io/", web::get().to(ws)))
        .workers(1)
        .bind(("127.0.0.1", port))?
        .run()
        .await
}
