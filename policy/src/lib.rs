//! Vigil's policy engine: Kubernetes, Cilium and Calico network policies in one model.
//!
//! - [`parse_policy_file`] / [`parse_cluster_file`] turn manifest text into normalized
//!   [`Policy`]s, [`Tier`]s and cluster objects, refusing bad files with located, actionable
//!   [`ManifestError`]s and reporting not-yet-enforced fields as [`Warning`]s.
//! - [`PolicySet`] is a validated set in force, with the enforced and staged evaluation orders.
//! - [`evaluate`] is the reference semantics (docs: shared/docs/policy-semantics.md).
//! - [`compile`] emits the datapath's tables (docs/datapath-contract.md) for one node; a lookup in
//!   them gives the same answer as [`evaluate`].
//! - [`testing`] holds random policy worlds, a simulator of the datapath's lookups and the
//!   differential check between the two, for this crate's tests and for other crates' (the eBPF
//!   differential test). It is plain code, always compiled, and unused by the library itself.
//!
//! Pure library: no file, socket or kernel access.
//!
//! # Semantic decisions
//!
//! Where policy-semantics.md leaves room, this crate follows the dialects' documentation and
//! the datapath contract:
//!
//! - **Identity-level matching.** Peers are matched by identity, as the datapath sees them (see
//!   the `universe` module): Kubernetes `ipBlock` and Calico `nets`/`notNets` match an endpoint
//!   or node identity only when every address of every endpoint carrying it lies inside the net;
//!   Cilium CIDR rules never match endpoints or nodes; a `/0` net is `world` for both families.
//! - **Calico `ipVersion` is matched on the packet**, not the peer identity: `ipVersion: 6` never
//!   matches an IPv4 packet, even from an identity that also has IPv6 addresses. The compiler
//!   makes a context *family-keyed* when some rule that can apply to it has an `ipVersion`
//!   (either direction, either view): its decision entries are emitted once per family (4 and
//!   6) and the datapath keys lookups by the packet's family ([`EndpointEntry::family_keyed`]);
//!   other contexts carry family 0.
//! - **Calico `types` defaulting** follows Calico: Ingress, plus Egress when there are egress
//!   rules, except that a policy with only egress rules is Egress-only.
//! - **Cilium.** A rule with no L3 field but with `toPorts`/`icmps` applies to every peer; an
//!   empty rule `{}` selects no peer (it only puts the endpoint in default deny). `ANY` means TCP,
//!   UDP and SCTP. An empty `fromEndpoints` selector selects endpoints only (not reserved
//!   identities); `reserved:` labels select reserved identities. `enableDefaultDeny: false`
//!   makes a policy's rules count without isolating the endpoint.
//! - **Not yet enforced.** L7 rules (Cilium `rules.http/dns/kafka`, Calico `http`) are enforced at
//!   L4: the ports are open, requests are not filtered. `toFQDNs` and `domains` select no peer
//!   (as before any DNS answer). Both produce a [`Warning`].
//! - **Refused rather than widened.** Calico `source.ports`/`source.notPorts` (the datapath keys on
//!   the destination port), `destination.ports` without a port protocol, `preRules`/`postRules`.
//! - **Ports.** Only TCP, UDP and SCTP carry ports (and ICMP/ICMPv6 their type and code); for
//!   every other protocol the port is 0, so e.g. UDP-Lite port rules cannot match.
//! - **Service accounts.** Calico `serviceAccounts.selector` and `serviceAccountSelector` see the
//!   service account's `projectcalico.org/name` label only (service-account labels are not part
//!   of [`Cluster`]).
//! - **Staged policies.** `stagedAction: Delete` removes the counterpart from the staged view.
//! - **Tiers.** A policy in an undeclared tier refuses the set; the `default` tier may be declared
//!   (for its `defaultAction`) but is always evaluated last.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod compile;
mod evaluate;
mod manifest;
mod model;
mod policy;
mod selector;
mod set;
mod universe;

pub mod testing;

pub use compile::{
    Compiled, DecisionEntry, DecisionValue, EndpointEntry, IdentityInfo, IpcacheEntry, Trace,
    compile, endpoint_flags, flags,
};
pub use evaluate::{Action, Evaluation, Evaluator, Hit, RuleRef, Special, ViewResult, evaluate};
pub use manifest::{
    ManifestError, ParsedCluster, ParsedPolicies, Warning, parse_cluster_file, parse_policy_file,
};
pub use model::{
    Cluster, Direction, Endpoint, NamedPort, Namespace, Node, SERVICE_ACCOUNT_LABEL, proto,
};
pub use policy::{
    CalicoL4, DEFAULT_TIER, DirectionRules, Entity, IcmpMatch, KUBERNETES_ORDER, L4Match,
    LabelView, NamespaceScope, PeerMatch, Policy, PolicyId, PolicyKind, PortMatch, PortSpec,
    ProtocolMatch, Rule, RuleAction, Section, StagedAction, Tier, TierDefaultAction,
};
pub use selector::{Selector, SelectorError, parse_calico_selector};
pub use set::{PolicySet, SetError};
pub use universe::{identity_label_strings, identity_of, reserved};
