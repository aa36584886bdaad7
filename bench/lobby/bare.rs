//! Baseline for the lobby benchmark (bench/lobby/run.sh): a bare actix-web server, one
//! worker, answering every GET with a fixed JSON body read from a file (a real lobby page, so
//! both servers send the same bytes). What actix itself costs per request is the ceiling.

use actix_web::http::header::ContentType;
use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(3300);
    let Some(file) = args.next() else {
        eprintln!("usage: lobby_bare PORT BODY_FILE");
        std::process::exit(2);
    };
    let body = web::Bytes::from(std::fs::read(file)?);
    HttpServer::new(move || {
        let body = body.clone();
        App::new().default_service(web::to(move || {
            let body = body.clone();
            async move {
                HttpResponse::Ok()
                    .insert_header(ContentType::json())
                    .body(body)
            }
        }))
    })
    .workers(1)
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
