//! The shaper's pieces one by one, then the proxy on real sockets.

use super::return_path::*;
use super::stats::*;
use super::*;

const REQ_PAGES_ID: u16 = 3;
const REQ_PAGES: u16 = 4;
const PONG: u16 = 2;
/// Bounds a socket test's waits so a bug fails it instead of hanging it.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn message(kind: u16, data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).expect("short data");
    [&kind.to_be_bytes()[..], &len.to_be_bytes(), data].concat()
}

fn req_pages(start: u64, len: u32) -> Vec<u8> {
    message(
        REQ_PAGES,
        &[&start.to_be_bytes()[..], &len.to_be_bytes()].concat(),
    )
}

fn req_pages_id(start: u64, len: u32, block: &str) -> Vec<u8> {
    let name_len = [u8::try_from(block.len()).expect("short name")];
    let data = [
        &start.to_be_bytes()[..],
        &len.to_be_bytes(),
        &name_len,
        block.as_bytes(),
    ]
    .concat();
    message(REQ_PAGES_ID, &data)
}

fn pong(seq: u32) -> Vec<u8> {
    message(PONG, &seq.to_be_bytes())
}

fn frame_all(framer: &mut Framer) -> Vec<Message> {
    std::iter::from_fn(|| framer.next_message()).collect()
}

/// One message of every type, and two the shaper does not know.
fn every_type() -> Vec<(MessageKind, Vec<u8>)> {
    vec![
        (MessageKind::Invalid, message(0, &[])),
        (MessageKind::Shut, message(1, &7u32.to_be_bytes())),
        (MessageKind::Pong, pong(9)),
        (
            MessageKind::ReqPagesId,
            req_pages_id(0x1000, 4096, "pc.ram"),
        ),
        (MessageKind::ReqPages, req_pages(0x2000, 8192)),
        (MessageKind::RecvBitmap, message(5, b"\x06pc.ram")),
        (MessageKind::ResumeAck, message(6, &1u32.to_be_bytes())),
        (MessageKind::SwitchoverAck, message(7, &[])),
        (MessageKind::Other(8), message(8, b"later")),
        (MessageKind::Other(0xffff), message(0xffff, &[0xaa; 300])),
    ]
}

#[test]
fn framer_cuts_every_type_in_any_chunks() {
    let expected = every_type();
    let stream: Vec<u8> = expected
        .iter()
        .flat_map(|(_, bytes)| bytes.clone())
        .collect();
    for chunk in [1, 2, 3, 5, 7, 13, stream.len()] {
        let mut framer = Framer::default();
        let mut messages = Vec::new();
        for piece in stream.chunks(chunk) {
            framer.push(piece);
            messages.extend(frame_all(&mut framer));
        }
        let got: Vec<_> = messages.into_iter().map(|m| (m.kind, m.bytes)).collect();
        assert_eq!(got, expected, "chunks of {chunk}");
        assert!(framer.into_tail().is_empty());
    }
}

#[test]
fn framer_waits_across_a_header_and_data_split() {
    let request = req_pages(0x4000, 4096);
    let mut framer = Framer::default();
    framer.push(&request[..2]); // Inside the header.
    assert_eq!(framer.next_message(), None);
    framer.push(&request[2..7]); // Header whole, data not.
    assert_eq!(framer.next_message(), None);
    framer.push(&request[7..]);
    let message = framer.next_message().expect("whole");
    assert_eq!(
        (message.kind, &message.bytes),
        (MessageKind::ReqPages, &request)
    );
    assert_eq!(framer.next_message(), None);
}

#[test]
fn framer_keeps_a_truncated_tail() {
    let whole = pong(1);
    let truncated = req_pages_id(0, 4096, "pc.ram");
    let mut framer = Framer::default();
    framer.push(&[&whole[..], &truncated[..9]].concat());
    assert_eq!(frame_all(&mut framer).len(), 1);
    assert_eq!(framer.into_tail(), truncated[..9]);

    let mut header_only = Framer::default();
    header_only.push(&[0, 4, 0]);
    assert_eq!(header_only.next_message(), None);
    assert_eq!(header_only.into_tail(), [0, 4, 0]);
}

#[test]
fn framer_takes_a_header_claiming_the_longest_data() {
    let data = vec![0x5a; usize::from(u16::MAX)];
    let bytes = message(0x1234, &data);
    let mut framer = Framer::default();
    framer.push(&bytes[..1000]);
    assert_eq!(framer.next_message(), None);
    framer.push(&bytes[1000..]);
    assert_eq!(framer.next_message().map(|m| m.bytes), Some(bytes));
}

fn decoded(bytes: Vec<u8>) -> Option<PageRequest> {
    let mut framer = Framer::default();
    framer.push(&bytes);
    decode_page_request(&framer.next_message().expect("whole"))
}

#[test]
fn page_requests_decode() {
    assert_eq!(
        decoded(req_pages(0x1234_5000, 8192)),
        Some(PageRequest {
            start: 0x1234_5000,
            len: 8192
        })
    );
    assert_eq!(
        decoded(req_pages_id(u64::MAX - 4095, 4096, "pc.ram")),
        Some(PageRequest {
            start: u64::MAX - 4095,
            len: 4096
        })
    );
    // Too short for a request, or not one.
    assert_eq!(decoded(message(REQ_PAGES, &[0; 11])), None);
    assert_eq!(decoded(message(REQ_PAGES_ID, &[])), None);
    assert_eq!(decoded(pong(3)), None);
    assert_eq!(decoded(message(9, &[0; 12])), None);
}

#[test]
fn requests_count_at_least_one_page() {
    let pages = |len| PageRequest { start: 0, len }.pages();
    assert_eq!(
        (pages(0), pages(4096), pages(6000), pages(65536)),
        (1, 1, 1, 16)
    );
}

/// Releases `delays` for messages arriving `gaps` apart, checking the schedule's rules.
fn check_schedule(gaps: &[Duration], delays: &[Duration]) {
    let mut schedule = Schedule::default();
    let mut arrival = Instant::now();
    let mut previous: Option<Instant> = None;
    for (gap, delay) in gaps.iter().zip(delays) {
        arrival += *gap;
        let release = schedule.release(arrival, *delay);
        assert!(release >= arrival + *delay);
        if let Some(previous) = previous {
            assert!(release >= previous);
            assert_eq!(release, (arrival + *delay).max(previous));
        } else {
            assert_eq!(release, arrival + *delay);
        }
        previous = Some(release);
    }
}

#[test]
fn fixed_delays_release_each_after_its_own_arrival() {
    let mut schedule = Schedule::default();
    let start = Instant::now();
    let releases: Vec<_> = [0, 1, 1, 50]
        .into_iter()
        .map(|at| schedule.release(start + ms(at), ms(20)))
        .collect();
    let expected: Vec<_> = [20, 21, 21, 70]
        .into_iter()
        .map(|at| start + ms(at))
        .collect();
    assert_eq!(releases, expected);
    check_schedule(&[ms(0), ms(3), ms(0), ms(40)], &[ms(20); 4]);
}

#[test]
fn a_short_delay_waits_behind_a_long_one() {
    let mut schedule = Schedule::default();
    let start = Instant::now();
    assert_eq!(schedule.release(start, ms(30)), start + ms(30));
    // The next request (or a PONG, with no delay) arrives later but goes out after it.
    assert_eq!(schedule.release(start + ms(1), ms(5)), start + ms(30));
    assert_eq!(
        schedule.release(start + ms(2), Duration::ZERO),
        start + ms(30)
    );
    assert_eq!(
        schedule.release(start + ms(40), Duration::ZERO),
        start + ms(40)
    );
}

#[test]
fn random_delays_keep_order_and_their_minimum() {
    let gap: LatencyModel = "uniform:0us..3ms".parse().expect("valid");
    let mut gap_draws = gap.draws(11);
    for text in ["uniform:1ms..20ms", "lognormal:1ms,10ms"] {
        let model: LatencyModel = text.parse().expect("valid");
        let gaps: Vec<_> = (0..2000).map(|_| gap_draws.next_latency()).collect();
        let mut draws = model.draws(12);
        let delays: Vec<_> = (0..2000).map(|_| draws.next_latency()).collect();
        check_schedule(&gaps, &delays);
    }
}

#[test]
fn huge_draws_do_not_overflow() {
    let mut schedule = Schedule::default();
    let now = Instant::now();
    assert_eq!(schedule.release(now, Duration::MAX), now + MAX_DELAY);
}

#[test]
fn draws_repeat_per_connection() {
    let delay = Delay {
        model: "uniform:1ms..9ms".parse().expect("valid"),
        seed: 5,
    };
    let draws = |index| {
        let mut draws = delay.draws_for_connection(index);
        (0..32).map(|_| draws.next_latency()).collect::<Vec<_>>()
    };
    assert_eq!(draws(0), draws(0));
    assert_ne!(draws(0), draws(1));
    let mut seeded = delay.model.draws(5);
    let first: Vec<_> = (0..32).map(|_| seeded.next_latency()).collect();
    assert_eq!(
        draws(0),
        first,
        "the first connection draws from the seed itself"
    );
}

#[test]
fn tally_summarises_delays() {
    let mut tally = DurationTally::default();
    assert_eq!(tally.summary(), None);
    for millis in [4, 1, 7] {
        tally.add(ms(millis));
    }
    assert_eq!(
        tally.summary(),
        Some(DelayStats {
            min: ms(1),
            mean: ms(4),
            max: ms(7)
        })
    );
}

fn example_stats() -> ShaperStats {
    ShaperStats {
        connections: 1,
        forward_bytes: 134 * (1 << 20) + 200 * 1024,
        return_messages: 415,
        page_requests: 412,
        pages_requested: 412,
        drawn: Some(DelayStats {
            min: ms(1),
            mean: ms(1),
            max: ms(1),
        }),
        measured: Some(DelayStats {
            min: Duration::from_nanos(1_060_400),
            mean: Duration::from_nanos(1_103_600),
            max: Duration::from_nanos(2_500_000),
        }),
        acks: Acks::Quick,
    }
}

#[test]
fn stats_print_on_one_line() {
    assert_eq!(
        example_stats().to_string(),
        "412 page requests (412 pages) delayed: drawn min 1ms mean 1ms max 1ms, \
         measured min 1060us mean 1104us max 2500us; 134.2 MiB forward, \
         415 return messages, 1 connection"
    );
    let undelayed = ShaperStats {
        drawn: None,
        measured: Some(DelayStats {
            min: Duration::from_nanos(800),
            mean: Duration::from_nanos(1_500),
            max: ms(2),
        }),
        page_requests: 1,
        pages_requested: 4,
        ..example_stats()
    };
    assert_eq!(
        undelayed.to_string(),
        "1 page request (4 pages) not delayed: measured min 800ns mean 2us max 2ms; \
         134.2 MiB forward, 415 return messages, 1 connection"
    );
    let delayed_acks = ShaperStats {
        acks: Acks::Delayed,
        ..undelayed
    };
    assert!(
        delayed_acks
            .to_string()
            .ends_with("1 connection, delayed ACKs"),
        "{delayed_acks}"
    );
    assert_eq!(delayed_acks.to_json()["acks"], "delayed");
    assert_eq!(example_stats().to_json()["acks"], "quick");
    assert_eq!(
        ShaperStats::default().to_string(),
        "no page requests; 0.0 MiB forward, 0 return messages, 0 connections"
    );
}

#[test]
fn stats_as_json() {
    let json = example_stats().to_json();
    assert_eq!(json["page_requests"], 412);
    assert_eq!(json["forward_bytes"], 134 * (1 << 20) + 200 * 1024);
    assert_eq!(json["drawn"]["mean_ns"], 1_000_000);
    assert_eq!(json["measured"]["min_ns"], 1_060_400);
    assert_eq!(json["measured"]["max_ns"], 2_500_000);
    let empty = ShaperStats::default().to_json();
    assert!(empty["drawn"].is_null() && empty["measured"].is_null());
    assert_eq!(empty["connections"], 0);
}

/// A shaper between a fake source and a fake destination, both with `TEST_TIMEOUT` on
/// their reads.
struct Rig {
    shaper: Shaper,
    source: TcpStream,
    destination: TcpStream,
}

fn rig(delay: Option<Delay>) -> Rig {
    let upstream = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let shaper =
        Shaper::start(upstream.local_addr().expect("address"), delay, Acks::Quick).expect("start");
    let source = TcpStream::connect(shaper.local_addr()).expect("connect to the shaper");
    upstream.set_nonblocking(true).expect("non-blocking");
    let deadline = Instant::now() + TEST_TIMEOUT;
    let destination = loop {
        match upstream.accept() {
            Ok((destination, _)) => break destination,
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "the shaper never connected");
                thread::sleep(ms(1));
            }
            Err(error) => panic!("accept: {error}"),
        }
    };
    destination.set_nonblocking(false).expect("blocking");
    for socket in [&source, &destination] {
        socket
            .set_read_timeout(Some(TEST_TIMEOUT))
            .expect("timeout");
    }
    Rig {
        shaper,
        source,
        destination,
    }
}

fn fixed(delay: Duration) -> Option<Delay> {
    Some(Delay {
        model: format!("fixed:{}ns", delay.as_nanos())
            .parse()
            .expect("valid"),
        seed: 1,
    })
}

fn read_exactly(mut socket: &TcpStream, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    socket.read_exact(&mut bytes).expect("read");
    bytes
}

fn read_to_end(mut socket: &TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    socket.read_to_end(&mut bytes).expect("read to the end");
    bytes
}

#[test]
fn shaper_forwards_the_main_stream_unchanged() {
    let rig = rig(fixed(ms(20)));
    let sent: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let source = rig.source.try_clone().expect("clone");
    let writer = thread::spawn({
        let sent = sent.clone();
        move || {
            (&source).write_all(&sent).expect("write");
            source.shutdown(Shutdown::Write).expect("shutdown");
        }
    });
    assert!(read_to_end(&rig.destination) == sent, "bytes changed");
    writer.join().expect("writer");
    let stats = rig.shaper.stats();
    assert_eq!(
        (stats.connections, stats.forward_bytes),
        (1, sent.len() as u64)
    );
}

#[test]
fn shaper_without_a_model_copies_the_return_path_with_its_truncated_tail() {
    let rig = rig(None);
    let truncated = req_pages_id(0x9000, 4096, "pc.ram");
    let sent = [&pong(1)[..], &req_pages(0, 4096), &truncated[..10]].concat();
    (&rig.destination).write_all(&sent).expect("write");
    rig.destination.shutdown(Shutdown::Write).expect("shutdown");
    assert_eq!(read_to_end(&rig.source), sent);
    let stats = rig.shaper.stats();
    assert_eq!((stats.return_messages, stats.page_requests), (2, 1));
    assert_eq!(stats.drawn, None);
    assert!(stats.measured.is_some());
}

#[test]
fn shaper_delays_page_requests_in_order_and_counts_them() {
    let delay = ms(20);
    let rig = rig(fixed(delay));
    let request = req_pages(0x10_0000, 4096);
    let sent = Instant::now();
    (&rig.destination).write_all(&request).expect("write");
    assert_eq!(read_exactly(&rig.source, request.len()), request);
    assert!(
        sent.elapsed() >= delay,
        "released after {:?}",
        sent.elapsed()
    );

    // A PONG right behind a delayed request goes out after it, not before.
    let named = req_pages_id(0x20_0000, 8192, "pc.ram");
    let ping_answer = pong(7);
    let sent = Instant::now();
    (&rig.destination)
        .write_all(&[&named[..], &ping_answer].concat())
        .expect("write");
    assert_eq!(read_exactly(&rig.source, named.len()), named);
    assert_eq!(read_exactly(&rig.source, ping_answer.len()), ping_answer);
    assert!(sent.elapsed() >= delay, "PONG after {:?}", sent.elapsed());

    // Every write is counted before the source sees its side end.
    rig.destination.shutdown(Shutdown::Write).expect("shutdown");
    assert!(read_to_end(&rig.source).is_empty());
    let stats = rig.shaper.stats();
    assert_eq!(
        (
            stats.connections,
            stats.return_messages,
            stats.page_requests,
            stats.pages_requested
        ),
        (1, 3, 2, 3)
    );
    let fixed_draws = DelayStats {
        min: delay,
        mean: delay,
        max: delay,
    };
    assert_eq!(stats.drawn, Some(fixed_draws));
    let measured = stats.measured.expect("measured");
    assert!(measured.min >= delay, "{measured:?}");
    assert!(measured.min <= measured.mean && measured.mean <= measured.max);
}

#[test]
fn shaper_does_not_delay_a_pong_alone() {
    // With an hour's latency, a PONG that arrives at all was not given it.
    let rig = rig(fixed(Duration::from_secs(3600)));
    let answer = pong(42);
    (&rig.destination).write_all(&answer).expect("write");
    assert_eq!(read_exactly(&rig.source, answer.len()), answer);
    let stats = rig.shaper.stats();
    assert_eq!((stats.return_messages, stats.page_requests), (1, 0));
    assert_eq!(stats.drawn, None);
}

#[test]
fn dropping_the_shaper_ends_its_threads() {
    let rig = rig(fixed(Duration::from_secs(3600)));
    // A request held for an hour, and both copy directions blocked reading.
    (&rig.destination)
        .write_all(&req_pages(0, 4096))
        .expect("write");
    let deadline = Instant::now() + TEST_TIMEOUT;
    while rig.shaper.stats().page_requests == 0 {
        assert!(Instant::now() < deadline, "the request was never read");
        thread::sleep(ms(1));
    }
    let (dropped, done) = mpsc::channel();
    let Rig {
        shaper,
        source,
        destination,
    } = rig;
    thread::spawn(move || {
        drop(shaper);
        let _ = dropped.send(());
    });
    done.recv_timeout(TEST_TIMEOUT)
        .expect("dropping the shaper did not return");
    // Both fake QEMUs see their connection end, without the held request.
    for socket in [&source, &destination] {
        let mut byte = [0];
        match (&*socket).read(&mut byte) {
            Ok(read) => assert_eq!(read, 0),
            Err(error) => assert!(
                !matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                "still open: {error}"
            ),
        }
    }
}
