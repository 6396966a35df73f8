//! `observe`: reads flows from a Vigil agent or relay (or anything speaking Hubble's
//! `observer.Observer`) and prints them, like `hubble observe`.
//!
//! The command line and the gRPC calls live here; filter building and rendering are pure modules.

#![forbid(unsafe_code)]

mod filters;
mod print;
mod query;

use std::{
    io::{IsTerminal as _, Write as _},
    process::ExitCode,
    time::Duration,
};

use clap::{ArgAction, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use tonic::transport::{Channel, Endpoint};
use vigil_proto::observer::{
    GetFlowsRequest, GetNodesRequest, ServerStatusRequest, observer_client::ObserverClient,
};
use vigil_proto::time::{now_unix_ns, timestamp};

use crate::print::{Format, Style};

/// Observe flows: every verdict, with the policy that decided it.
#[derive(Debug, Parser)]
#[command(name = "observe", version)]
struct Cli {
    /// The Observer to ask: a relay (default port 4245) or an agent (4244).
    #[arg(long, global = true, default_value = "127.0.0.1:4245")]
    server: String,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    flows: FlowArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The server's status (flows held, seen, rate, nodes).
    Status,
    /// The nodes behind the server.
    Nodes,
    /// Run one read-only SQL statement over stored flows and policy hits.
    Query(QueryArgs),
}

#[derive(Debug, clap::Args)]
struct QueryArgs {
    /// The store: sqlite://PATH or clickhouse://HOST:PORT/DB (the relay's --store).
    #[arg(long, default_value = "sqlite:///var/lib/vigil/flows.db")]
    store: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = query::QueryFormat::Table)]
    output: query::QueryFormat,
    /// List ready queries (in the store's dialect) instead of running one.
    #[arg(long, conflicts_with = "sql")]
    examples: bool,
    /// The statement, e.g. "SELECT policy_name, count(*) FROM policy_hits GROUP BY 1".
    #[arg(required_unless_present = "examples")]
    sql: Option<String>,
}

#[derive(Debug, clap::Args)]
struct FlowArgs {
    /// Keep printing new flows as they arrive (Ctrl-C to stop).
    #[arg(short, long)]
    follow: bool,
    /// The last N flows (default 20 unless following or --since is given).
    #[arg(long, value_name = "N", conflicts_with = "first")]
    last: Option<u64>,
    /// The first N flows held.
    #[arg(long, value_name = "N")]
    first: Option<u64>,
    /// Every flow held.
    #[arg(long, conflicts_with_all = ["last", "first"])]
    all: bool,
    /// Flows since a time: a duration ago (5m, 1h30m) or RFC 3339.
    #[arg(long)]
    since: Option<String>,
    /// Flows until a time: a duration ago or RFC 3339.
    #[arg(long)]
    until: Option<String>,
    /// Flows from or to a pod: [namespace/]name-prefix.
    #[arg(long, action = ArgAction::Append)]
    pod: Vec<String>,
    /// Flows from a pod.
    #[arg(long, action = ArgAction::Append)]
    from_pod: Vec<String>,
    /// Flows to a pod.
    #[arg(long, action = ArgAction::Append)]
    to_pod: Vec<String>,
    /// Flows from or to pods of a namespace (the namespace of --pod values without one).
    #[arg(short, long, action = ArgAction::Append)]
    namespace: Vec<String>,
    /// Flows from or to an IP address or CIDR.
    #[arg(long, action = ArgAction::Append)]
    ip: Vec<String>,
    /// Flows from an IP address or CIDR.
    #[arg(long, action = ArgAction::Append)]
    from_ip: Vec<String>,
    /// Flows to an IP address or CIDR.
    #[arg(long, action = ArgAction::Append)]
    to_ip: Vec<String>,
    /// Flows from or to endpoints matching a label selector (app=web, k8s:app in (a,b), !debug).
    #[arg(short, long, action = ArgAction::Append)]
    label: Vec<String>,
    /// Flows from endpoints matching a label selector.
    #[arg(long, action = ArgAction::Append)]
    from_label: Vec<String>,
    /// Flows to endpoints matching a label selector.
    #[arg(long, action = ArgAction::Append)]
    to_label: Vec<String>,
    /// Flows from or to a port.
    #[arg(long, action = ArgAction::Append)]
    port: Vec<String>,
    /// Flows from a port.
    #[arg(long, action = ArgAction::Append)]
    from_port: Vec<String>,
    /// Flows to a port.
    #[arg(long, action = ArgAction::Append)]
    to_port: Vec<String>,
    /// FORWARDED, DROPPED, AUDIT, ...
    #[arg(long, action = ArgAction::Append)]
    verdict: Vec<String>,
    /// tcp, udp, sctp, icmp, icmpv4, icmpv6.
    #[arg(long, action = ArgAction::Append)]
    protocol: Vec<String>,
    /// ingress or egress.
    #[arg(long, action = ArgAction::Append)]
    traffic_direction: Vec<String>,
    /// Flows decided by a policy: name, namespace/name or Kind/[namespace/]name (Vigil extension).
    #[arg(long, action = ArgAction::Append)]
    policy: Vec<String>,
    /// Flows seen by a node (patterns with * allowed).
    #[arg(long, action = ArgAction::Append)]
    node_name: Vec<String>,
    /// Dropped flows with this drop reason: POLICY_DENIED (no rule allowed it), POLICY_DENY (a
    /// Deny rule), ...
    #[arg(long, action = ArgAction::Append)]
    drop_reason_desc: Vec<String>,
    /// Event type TYPE[:SUBTYPE]: drop, trace (trace:to-endpoint, trace:from-endpoint, ...),
    /// policy-verdict, l7, capture, debug, agent, trace-sock.
    #[arg(short = 't', long = "type", action = ArgAction::Append)]
    r#type: Vec<String>,
    /// Flows from or to a numeric security identity.
    #[arg(long, action = ArgAction::Append)]
    identity: Vec<String>,
    /// Flows from a security identity.
    #[arg(long, action = ArgAction::Append)]
    from_identity: Vec<String>,
    /// Flows to a security identity.
    #[arg(long, action = ArgAction::Append)]
    to_identity: Vec<String>,
    /// TCP flows with all of these flags set: syn, syn,ack, fin, rst, ...
    #[arg(long, action = ArgAction::Append)]
    tcp_flags: Vec<String>,
    /// The flow with this uuid.
    #[arg(long, action = ArgAction::Append)]
    uuid: Vec<String>,
    /// Negates the next filter flag.
    #[arg(long, action = ArgAction::Count)]
    not: u8,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Compact)]
    output: Format,
    /// Print the policies (Hubble's allowed/denied-by lists and every hit of the trace).
    #[arg(long)]
    print_policy_names: bool,
    /// Only these fields of each flow (comma-separated proto paths, e.g.
    /// time,verdict,source.pod_name,l4.TCP.destination_port); the server sends nothing else.
    #[arg(long, value_delimiter = ',', action = ArgAction::Append)]
    experimental_field_mask: Vec<String>,
    /// Colour: auto (when stdout is a terminal), always or never.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    color: String,
}

/// The filter flags in command-line order, each marked negated when a `--not` precedes it.
fn occurrences(matches: &clap::ArgMatches) -> Vec<filters::Occurrence> {
    let id = |flag: &str| flag.replace('-', "_");
    let mut all: Vec<(usize, filters::Occurrence)> = Vec::new();
    for flag in filters::FLAGS {
        let (Some(values), Some(indices)) = (
            matches.get_many::<String>(&id(flag)),
            matches.indices_of(&id(flag)),
        ) else {
            continue;
        };
        for (value, index) in values.zip(indices) {
            all.push((
                index,
                filters::Occurrence {
                    flag,
                    value: value.clone(),
                    negated: false,
                },
            ));
        }
    }
    all.sort_by_key(|(i, _)| *i);
    if let Some(nots) = matches.indices_of("not") {
        for n in nots {
            if let Some((_, o)) = all.iter_mut().find(|(i, _)| *i > n) {
                o.negated = true;
            }
        }
    }
    all.into_iter().map(|(_, o)| o).collect()
}

/// A failure worth one line on stderr.
#[derive(Debug)]
struct Failure(String);

impl From<filters::BadValue> for Failure {
    fn from(e: filters::BadValue) -> Failure {
        Failure(e.0)
    }
}

fn request(args: &FlowArgs, matches: &clap::ArgMatches) -> Result<GetFlowsRequest, Failure> {
    let (whitelist, blacklist) = filters::build(&occurrences(matches))?;
    let now = now_unix_ns();
    let since = args
        .since
        .as_deref()
        .map(|s| filters::parse_time(s, now).map_err(|e| Failure(format!("--since {e}"))))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|s| filters::parse_time(s, now).map_err(|e| Failure(format!("--until {e}"))))
        .transpose()?;
    let (number, first) = match (args.last, args.first, args.all) {
        (Some(n), _, _) => (n, false),
        (_, Some(n), _) => (n, true),
        (_, _, true) => (0, false),
        // As hubble: the last 20, unless following or asking for a time range.
        _ if args.follow || since.is_some() || until.is_some() => (0, false),
        _ => (20, false),
    };
    Ok(GetFlowsRequest {
        number,
        first,
        follow: args.follow,
        whitelist,
        blacklist,
        since: since.map(timestamp),
        until: until.map(timestamp),
        field_mask: (!args.experimental_field_mask.is_empty()).then(|| prost_types::FieldMask {
            paths: args.experimental_field_mask.clone(),
        }),
        ..GetFlowsRequest::default()
    })
}

async fn connect(server: &str) -> Result<ObserverClient<Channel>, Failure> {
    let uri = if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    };
    let endpoint = Endpoint::from_shared(uri)
        .map_err(|e| Failure(format!("--server {server}: not an address: {e}")))?
        .connect_timeout(Duration::from_secs(5));
    let channel = endpoint.connect().await.map_err(|e| {
        let mut cause = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            cause = s.to_string();
            source = s.source();
        }
        Failure(format!(
            "cannot connect to the observer at {server}: {cause}"
        ))
    })?;
    Ok(ObserverClient::new(channel).max_decoding_message_size(16 << 20))
}

fn call_failed(server: &str, status: tonic::Status) -> Failure {
    Failure(format!(
        "the observer at {server} answered {:?}: {}",
        status.code(),
        status.message()
    ))
}

/// Writes a line; a closed stdout (`| head`) ends the program quietly.
fn emit(out: &mut impl std::io::Write, line: &str) -> Result<bool, Failure> {
    match writeln!(out, "{line}") {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Failure(format!("write to stdout: {e}"))),
    }
}

async fn flows(cli: &Cli, matches: &clap::ArgMatches) -> Result<(), Failure> {
    let args = &cli.flows;
    let request = request(args, matches)?;
    let color = match args.color.as_str() {
        "always" => true,
        "never" => false,
        _ => std::io::stdout().is_terminal() && args.output != Format::Json,
    };
    let style = Style {
        format: args.output,
        color,
        policy_names: args.print_policy_names,
    };
    let mut client = connect(&cli.server).await?;
    let mut stream = client
        .get_flows(request)
        .await
        .map_err(|s| call_failed(&cli.server, s))?
        .into_inner();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if style.format == Format::Table && !emit(&mut out, &print::table_header())? {
        return Ok(());
    }
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    // Following, lines are flushed as soon as no further flow is already waiting: one write per
    // burst rather than per line, and nothing held back while the stream is quiet.
    let mut unflushed = false;
    loop {
        let next = tokio::select! {
            biased;
            next = stream.message() => next,
            () = std::future::ready(()), if unflushed => {
                let _ = out.flush();
                unflushed = false;
                continue;
            }
            _ = &mut interrupted => break,
        };
        match next {
            Ok(Some(response)) => {
                if !emit(&mut out, &print::render(&response, style))? {
                    return Ok(());
                }
                unflushed = args.follow;
            }
            Ok(None) => break,
            Err(status) => {
                let _ = out.flush();
                return Err(call_failed(&cli.server, status));
            }
        }
    }
    let _ = out.flush();
    Ok(())
}

async fn status(server: &str) -> Result<(), Failure> {
    let mut client = connect(server).await?;
    let s = client
        .server_status(ServerStatusRequest {})
        .await
        .map_err(|s| call_failed(server, s))?
        .into_inner();
    let pct = if s.max_flows > 0 {
        s.num_flows as f64 * 100.0 / s.max_flows as f64
    } else {
        0.0
    };
    let connected = s.num_connected_nodes.unwrap_or(0);
    let unavailable = s.num_unavailable_nodes.unwrap_or(0);
    println!("Healthcheck (via {server}): Ok");
    println!("Version: {}", s.version);
    println!(
        "Current/Max Flows: {}/{} ({pct:.2}%)",
        s.num_flows, s.max_flows
    );
    println!("Seen Flows: {}", s.seen_flows);
    println!("Flows/s: {:.2}", s.flows_rate);
    println!("Uptime: {}s", s.uptime_ns / 1_000_000_000);
    println!("Connected Nodes: {connected}/{}", connected + unavailable);
    if !s.unavailable_nodes.is_empty() {
        println!("Unavailable Nodes: {}", s.unavailable_nodes.join(", "));
    }
    Ok(())
}

async fn run_query(args: &QueryArgs) -> Result<(), Failure> {
    use vigil_storage::Store as _;
    let dialect = if args.store.starts_with("clickhouse://") {
        vigil_storage::Dialect::ClickHouse
    } else {
        vigil_storage::Dialect::Sqlite
    };
    let lines = if args.examples {
        query::examples(dialect)
    } else {
        let store = vigil_storage::open_for_query(&args.store)
            .await
            .map_err(|e| Failure(e.to_string()))?;
        let sql = args.sql.as_deref().unwrap_or_default();
        let result = store.query(sql).await.map_err(|e| Failure(e.to_string()))?;
        query::render(&result, args.output)
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for line in lines {
        if !emit(&mut out, &line)? {
            return Ok(());
        }
    }
    let _ = out.flush();
    Ok(())
}

async fn nodes(server: &str) -> Result<(), Failure> {
    let mut client = connect(server).await?;
    let nodes = client
        .get_nodes(GetNodesRequest {})
        .await
        .map_err(|s| call_failed(server, s))?
        .into_inner()
        .nodes;
    println!(
        "{:<24} {:<16} {:<22} {:>10} {:>24} VERSION",
        "NAME", "STATUS", "ADDRESS", "AGE", "CURRENT/MAX-FLOWS"
    );
    for n in nodes {
        let state = vigil_proto::relay::NodeState::try_from(n.state)
            .map(|s| s.as_str_name())
            .unwrap_or("UNKNOWN_NODE_STATE");
        println!(
            "{:<24} {:<16} {:<22} {:>9}s {:>24} {}",
            n.name,
            state,
            n.address,
            n.uptime_ns / 1_000_000_000,
            format!("{}/{}", n.num_flows, n.max_flows),
            n.version
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("observe: start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            Some(Command::Status) => status(&cli.server).await,
            Some(Command::Nodes) => nodes(&cli.server).await,
            Some(Command::Query(args)) => run_query(args).await,
            None => flows(&cli, &matches).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("observe: {message}");
            ExitCode::FAILURE
        }
    }
}
