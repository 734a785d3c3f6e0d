//! Wire compatibility with the book's clients: the book's `log.v1` messages written by hand as
//! prost structs with exactly the book's field numbers (docs/ARCHITECTURE.md, "Wire API"; not
//! the generated code), sent to a real node, and the replies decoded with the same structs.
//! Also malformed request bytes in a hand-made gRPC frame, and server reflection.

mod server_support;

use bytes::Bytes;
use http_body_util::BodyExt;
use server_support::TestNode;
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;
use tonic_prost::ProstCodec;

#[derive(Clone, PartialEq, prost::Message)]
struct BookRecord {
    #[prost(bytes = "vec", tag = "1")]
    value: Vec<u8>,
    #[prost(uint64, tag = "2")]
    offset: u64,
    #[prost(uint64, tag = "3")]
    term: u64,
    #[prost(uint32, tag = "4")]
    r#type: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct BookProduceRequest {
    #[prost(message, optional, tag = "1")]
    record: Option<BookRecord>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct BookProduceResponse {
    #[prost(uint64, tag = "1")]
    offset: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct BookConsumeRequest {
    #[prost(uint64, tag = "1")]
    offset: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct BookConsumeResponse {
    // Field 2, as in the book.
    #[prost(message, optional, tag = "2")]
    record: Option<BookRecord>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct BookGetServersRequest {}

#[derive(Clone, PartialEq, prost::Message)]
struct BookServer {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    rpc_addr: String,
    #[prost(bool, tag = "3")]
    is_leader: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
struct BookGetServersResponse {
    #[prost(message, repeated, tag = "1")]
    servers: Vec<BookServer>,
}

fn path(method: &'static str) -> PathAndQuery {
    PathAndQuery::from_static(method)
}

#[tokio::test]
async fn book_messages_round_trip_through_every_book_rpc() {
    let node = TestNode::start().await;
    let mut grpc = tonic::client::Grpc::new(node.channel(Some("root")).await.unwrap());

    grpc.ready().await.unwrap();
    let produced: BookProduceResponse = grpc
        .unary(
            tonic::Request::new(BookProduceRequest {
                record: Some(BookRecord {
                    value: b"hello world".to_vec(),
                    ..Default::default()
                }),
            }),
            path("/log.v1.Log/Produce"),
            ProstCodec::<BookProduceRequest, BookProduceResponse>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(produced.offset, 0);

    grpc.ready().await.unwrap();
    let consumed: BookConsumeResponse = grpc
        .unary(
            tonic::Request::new(BookConsumeRequest { offset: 0 }),
            path("/log.v1.Log/Consume"),
            ProstCodec::<BookConsumeRequest, BookConsumeResponse>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    let record = consumed.record.expect("record in field 2");
    assert_eq!(record.value, b"hello world");
    assert_eq!(record.offset, 0);

    // ProduceStream with book messages.
    grpc.ready().await.unwrap();
    let requests = futures::stream::iter((1..=3).map(|i| BookProduceRequest {
        record: Some(BookRecord {
            value: format!("s{i}").into_bytes(),
            ..Default::default()
        }),
    }));
    let mut acks = grpc
        .streaming(
            tonic::Request::new(requests),
            path("/log.v1.Log/ProduceStream"),
            ProstCodec::<BookProduceRequest, BookProduceResponse>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    for expected in 1..=3 {
        assert_eq!(acks.message().await.unwrap().unwrap().offset, expected);
    }

    // ConsumeStream with book messages.
    grpc.ready().await.unwrap();
    let mut stream = grpc
        .server_streaming(
            tonic::Request::new(BookConsumeRequest { offset: 2 }),
            path("/log.v1.Log/ConsumeStream"),
            ProstCodec::<BookConsumeRequest, BookConsumeResponse>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    let r = stream.message().await.unwrap().unwrap().record.unwrap();
    assert_eq!((r.offset, r.value.as_slice()), (2, &b"s2"[..]));
    drop(stream);

    grpc.ready().await.unwrap();
    let servers: BookGetServersResponse = grpc
        .unary(
            tonic::Request::new(BookGetServersRequest {}),
            path("/log.v1.Log/GetServers"),
            ProstCodec::<BookGetServersRequest, BookGetServersResponse>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(servers.servers.len(), 1);
    assert!(servers.servers[0].is_leader);
    assert_eq!(servers.servers[0].id, "proglog-0");
    node.stop().await;
}

/// Sends one hand-made gRPC frame (`[compressed u8][length u32 BE][payload]`) to Produce and
/// returns the `grpc-status` of the reply.
async fn send_raw_frame(channel: tonic::transport::Channel, frame: Vec<u8>) -> i32 {
    use tower::ServiceExt;
    let request = http::Request::builder()
        .method("POST")
        .uri("https://localhost/log.v1.Log/Produce")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(http_body_util::Full::new(
            Bytes::from(frame),
        )))
        .unwrap();
    let response = channel.oneshot(request).await.unwrap();
    let in_headers = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().parse::<i32>().unwrap());
    if let Some(code) = in_headers {
        return code;
    }
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().expect("trailers with grpc-status");
    trailers["grpc-status"].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn malformed_request_bytes_are_rejected_and_the_node_keeps_serving() {
    let node = TestNode::start().await;
    let channel = node.channel(Some("root")).await.unwrap();

    // A frame whose payload is not a protobuf message (an unterminated varint tag).
    let garbage = vec![0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff];
    let code = send_raw_frame(channel.clone(), garbage).await;
    // gRPC specifies INTERNAL for a request that does not parse.
    assert_eq!(Code::from(code), Code::Internal);

    // A frame that announces more bytes than it carries.
    let truncated = vec![0, 0, 0, 0, 100, 0x0a, 0x02];
    let code = send_raw_frame(channel.clone(), truncated).await;
    assert_ne!(Code::from(code), Code::Ok);

    // A frame with an invalid compression flag.
    let bad_flag = vec![7, 0, 0, 0, 0];
    let code = send_raw_frame(channel.clone(), bad_flag).await;
    assert_ne!(Code::from(code), Code::Ok);

    // Nothing was appended and the node still serves well-formed calls.
    let mut client = proglog_proto::log::v1::log_client::LogClient::new(channel);
    let offset = client
        .produce(proglog_proto::log::v1::ProduceRequest {
            record: Some(server_support::record("fine")),
        })
        .await
        .unwrap()
        .into_inner()
        .offset;
    assert_eq!(offset, 0);
    node.stop().await;
}

#[tokio::test]
async fn reflection_lists_the_log_service_without_a_client_certificate() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let node = TestNode::start().await;
    // Reflection, like health, needs no identity.
    let mut client = ServerReflectionClient::new(node.channel(None).await.unwrap());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = client
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reply {reply:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"log.v1.Log".to_owned()), "{names:?}");
    node.stop().await;
}
