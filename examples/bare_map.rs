//! The reference point of issue 2's lookup goal, rebuilt so it is measured in the same run
//! as Persona: a bare actix-web server holding pre-serialized bodies in a `DashMap`.
//!
//! No auth, no middleware, no schema, no read-time members: `GET /p/{id}` answers the body
//! stored under `id` (ids `c0`..`c{N-1}`, each its own allocation of `BYTES` bytes), and
//! `GET /constant` answers one static body of the same size. `scripts/load-lookup.sh`
//! drives both beside Persona's lookup and ceiling routes; the ratio of the two is what a
//! lookup costs when nothing is looked up but bytes.
//!
//! Usage: `cargo run --release --example bare_map -- PROFILES BYTES` (listens on an
//! ephemeral loopback port, printed as `listening on ADDR`; one worker a core).

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{App, HttpResponse, HttpServer, web};
use bytes::Bytes;
use dashmap::DashMap;

type Bodies = DashMap<String, Bytes, foldhash::fast::RandomState>;

/// The body under `id`, or 404.
async fn by_id(bodies: web::Data<Arc<Bodies>>, id: web::Path<String>) -> HttpResponse {
    match bodies.get(id.as_str()) {
        // A pointer clone: the body is not copied until the socket write.
        Some(body) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .body(body.value().clone()),
        None => HttpResponse::NotFound().finish(),
    }
}

/// The same-sized constant body.
async fn constant(body: web::Data<Bytes>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(body.get_ref().clone())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut number = |default: usize| {
        args.next().map_or(default, |a| {
            a.parse().expect("PROFILES and BYTES are numbers")
        })
    };
    let (profiles, size) = (number(1_000_000), number(1442));
    let bodies: Arc<Bodies> = Arc::new(DashMap::with_capacity_and_hasher(
        profiles,
        Default::default(),
    ));
    for i in 0..profiles {
        // Bytes that vary per profile, so nothing is shared between bodies.
        let body: Vec<u8> = (0..size).map(|k| b'a' + ((i + k) % 26) as u8).collect();
        bodies.insert(format!("c{i}"), Bytes::from(body));
    }
    let constant_body = Bytes::from(vec![b'x'; size]);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("listening on {}", listener.local_addr()?);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(Arc::clone(&bodies)))
            .app_data(web::Data::new(constant_body.clone()))
            .route("/p/{id}", web::get().to(by_id))
            .route("/constant", web::get().to(constant))
    })
    .workers(cores)
    .listen(listener)?
    .run()
    .await
}
