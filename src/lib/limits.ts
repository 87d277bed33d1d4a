/**
 * Every bound in cohort, each with its reason and its unit last in the name
 * (DESIGN.md, Limits). Relations between bounds are checked when this module
 * loads, so an inconsistent edit fails at start, not in production.
 */
import { AssertionError } from './assert.js';

export const limits = {
  /** Largest frame payload accepted or sent; bigger frames are refused before buffering. 16 MiB fits a snapshot chunk plus headers. */
  frameBytesMax: 16 * 1024 * 1024,
  /** Bytes of a frame header: u32 length + u32 CRC32C. */
  frameHeaderBytes: 8,
  /** Largest snapshot chunk sent in one InstallSnapshot message. */
  snapshotChunkBytesMax: 1024 * 1024,
  /** Longest node or cluster id, in characters. */
  idBytesMax: 64,
  /** Longest user name, in characters; a user's connection id `user:<name>:<12 hex digits>` must fit idBytesMax. */
  userNameCharsMax: 32,
  /** Users the replicated auth store holds (each names its roles; bounds the store and its snapshot). */
  authUsersMax: 10_000,
  /** Roles the replicated auth store holds. */
  authRolesMax: 1_000,
  /** Key permissions one role holds (each is checked on every request of a user with that role). */
  authRolePermissionsMax: 1_000,
  /** Roles one user holds. */
  authUserRolesMax: 64,
  /** Days a certificate issued by `cohort certs issue` is valid by default (a year: rotate well before). */
  certValidityDaysDefault: 365,
  /** Days a cluster CA made by `cohort certs init` is valid by default (ten years). */
  caValidityDaysDefault: 3650,
  /** Longest validity a certificate may be issued for, in days (a hundred years). */
  certValidityDaysMax: 36_500,
  /** How often a node looks for members removed from the Raft configuration, to close their links and refuse their dials. */
  membershipCheckMs: 1_000,
  /** Membership checks in a row without a leader (or outside its own configuration) before a node asks the leader whether it was removed: a few election timeouts, so a healthy cluster has re-elected by then. */
  removalQuietChecks: 3,
  /** Deadline of each call asking the cluster whether this node is still a member. */
  removalAskTimeoutMs: 2_000,
  /** A node warns at start and on reload when its certificate expires within this many days; `cohort up` reissues such certificates. */
  certRenewWithinDays: 30,
  /** Largest certificate, key or CA file read, in bytes (a CA bundle of a few hundred certificates). */
  certFileBytesMax: 1024 * 1024,
  /** Messages queued for one peer before send() answers OVERLOADED. */
  peerQueueMessagesMax: 16 * 1024,
  /** Bytes queued for one peer before send() answers OVERLOADED. */
  peerQueueBytesMax: 64 * 1024 * 1024,
  /** Bytes gathered into one socket write (write coalescing). */
  writeBatchBytesMax: 256 * 1024,
  /** Time allowed for the handshake on a new connection. */
  handshakeTimeoutMs: 5_000,
  /** First reconnect delay after a connection fails. */
  reconnectDelayMsMin: 50,
  /** Ceiling of the exponential reconnect backoff. */
  reconnectDelayMsMax: 5_000,
  /** Time to connect before the attempt counts as failed. */
  connectTimeoutMs: 3_000,
  /** Time close() lets queued frames drain to peers before it destroys the sockets. */
  transportCloseGraceMs: 1_000,
  /** Largest handshake frame; before the handshake a peer is unauthenticated and may not make us buffer more. */
  handshakeBytesMax: 4 * 1024,
  /** Connections allowed mid-handshake at once; past it the oldest is closed, so a connection flood cannot exhaust memory nor keep out a quick honest handshake (one round trip). */
  handshakesPendingMax: 256,
  /** Connections from one remote address allowed mid-handshake at once; past it that address's oldest is closed, so one address cannot crowd out the others. */
  handshakesPendingPerAddressMax: 32,
  /** Time a frame that started arriving has to arrive whole (16 MiB at ~1 MB/s with room); a peer trickling a frame (slowloris) is cut off. */
  frameReadTimeoutMs: 30_000,
  /** Time after which an open connection that carried nothing at all (not even a keepalive) is closed: its peer is dead, hung or junk. */
  idleTimeoutMs: 60_000,
  /** Silence on an open connection after which the transport sends an empty keepalive frame, so quiet but live peers (followers between elections, idle clients) never meet idleTimeoutMs. */
  keepaliveIntervalMs: 10_000,
  /** Least time without application messages before a dial-only client may be closed to make room for a new one when dialOnlyPeersMax is reached. */
  dialOnlyEvictIdleMsMin: 5_000,
  /** Bytes of partial frames one transport buffers over all its connections; past it the connections holding the most are closed (a few maximal frames, not one per connection). */
  inputBufferedBytesMax: 64 * 1024 * 1024,
  /** Deepest nesting of arrays and maps in a decoded message, checked before any recursive decoding (protobuf's default recursion limit is 100). */
  messageNestingDepthMax: 100,
  /** Window of the log-line rate limiter (lib/log-limiter.ts): repeated lines are summarised once per window. */
  logRepeatWindowMs: 10_000,
  /** Lines with the same key logged per window before the rest are only counted. */
  logRepeatBurstMax: 5,
  /** Distinct keys the log-line rate limiter tracks at once; more share one bucket (keys are meant to be fixed messages). */
  logRepeatKeysMax: 256,
  /** Search steps the linearizability checker spends before answering 'unknown'; about 15 s of search. */
  linearizabilityStepsMax: 50_000_000,
  /** Bytes the linearizability checker's memo may hold per partition before answering 'unknown'; keeps CI hosts out of swap. */
  linearizabilityMemoBytesMax: 256 * 1024 * 1024,
  /** Connected dial-only clients (nodes outside the address book) one transport serves at once. */
  dialOnlyPeersMax: 4096,
  /** Protocol version every peer must share (the Hello's `protocolVersion`); peers with another are refused. 2: empty frames are keepalives. */
  protocolVersion: 2,
  /** Newest protocol version spoken, agreed per connection in the handshake (older peers keep `protocolVersion`). 3: a frame carries a batch of messages. */
  protocolVersionMax: 3,
  /** Bytes of the messages (with their length prefixes) one batch frame carries when it holds more than one; fixed by the protocol so every receiver can take what any sender cuts. */
  batchFrameBytesMax: 256 * 1024,
  /** Messages in one batch frame; a receiver decodes them all before delivering any, so this bounds the objects one frame makes. */
  batchFrameMessagesMax: 4096,
  /** Bytes of the length prefix of each message in a batch frame (u32). */
  batchRecordHeaderBytes: 4,
  /** Size at which a WAL segment is closed and a new one started; bounds recovery reads and deletion granularity. */
  walSegmentBytesMax: 64 * 1024 * 1024,
  /** Largest single WAL record; a bigger length field is corruption. Fits one frame of entries plus encoding. */
  walRecordBytesMax: 32 * 1024 * 1024,
  /** Bytes gathered into one group-commit write before it is flushed without waiting for the next turn. */
  walBatchBytesMax: 4 * 1024 * 1024,
  /** Bytes of WAL records queued behind an in-flight fdatasync before save() answers OVERLOADED. */
  walQueueBytesMax: 64 * 1024 * 1024,
  /** Entry bytes applied since the last snapshot (or that snapshot's size, if larger) before a RaftNode takes a new one: bounds the log a restart replays, and a snapshot costs at most about as much writing as the log it replaces. */
  snapshotLogBytesMax: 64 * 1024 * 1024,
  /** Snapshot files kept: the newest plus one to fall back on if the newest proves unreadable. */
  snapshotsRetainedMax: 2,
  /** On-disk format version of WAL segments and snapshot files; other versions are refused. */
  walFormatVersion: 1,
  /** Largest Raft entry payload accepted by propose(); one entry must fit an AppendEntries frame. */
  raftEntryBytesMax: 4 * 1024 * 1024,
  /** Default soft cap on the entry bytes of one AppendEntries message (at least one entry is always sent). */
  raftAppendBytesMax: 1024 * 1024,
  /** Default cap on the entries of one AppendEntries message (batching bound). */
  raftAppendEntriesMax: 512,
  /** Default cap on pipelined AppendEntries in flight to one follower before waiting for acks. */
  raftInflightAppendsMax: 256,
  /** Entries a leader holds uncommitted before propose() answers OVERLOADED (bounds leader memory). */
  raftUncommittedEntriesMax: 16 * 1024,
  /** Committed entries handed to the state machine in one Ready (bounds one apply batch). */
  raftApplyEntriesMax: 4096,
  /** ReadIndex requests waiting for a leadership confirmation before readIndex() answers OVERLOADED. */
  raftPendingReadsMax: 16 * 1024,
  /** Proposals a RaftNode holds waiting to be applied before propose() answers OVERLOADED (bounds shell memory; matches the core's uncommitted cap). */
  raftProposalsPendingMax: 16 * 1024,
  /**
   * Largest Raft term accepted from the wire (and in messages the core steps). Terms grow by one
   * per election; 2^48 elections at one per millisecond take 8,900 years, and term + 1 stays far
   * below 2^53, so term arithmetic never loses precision.
   */
  raftTermMax: 2 ** 48,
  /** Largest Raft log index accepted from the wire; 2^48 entries at a million per second take 8.9 years of log. */
  raftIndexMax: 2 ** 48,
  /**
   * How far above a node's current term a peer's message may be; a bigger jump is dropped as bad
   * input (counted, logged). Safe for liveness: terms grow by at most a few per election timeout,
   * and with pre-vote (on by default) a node cut off from a majority does not raise its term at
   * all, so an honest peer is this far ahead only after about a million elections it missed
   * (days of back-to-back elections at 150 ms). A bug or a corrupted message cannot push the
   * cluster's terms towards raftTermMax in one step. (Raft is not Byzantine-tolerant: this
   * bounds accidents, not a peer that lies on purpose.)
   */
  raftTermJumpMax: 2 ** 20,
  /** How far a remote hybrid-logical-clock timestamp may run ahead of local physical time before it is refused, so one bad clock cannot drag every HLC into the future. */
  hlcDriftMsMax: 500,
  /** Largest logical counter accepted in a remote HLC timestamp; keeps counter arithmetic far from 2^53. */
  hlcLogicalMax: 2 ** 32,
  /** Most entries in a vector clock decoded from the wire (one per process ever seen). */
  vectorClockEntriesMax: 4096,
  /** Deadline of an RPC call when the caller gives none; long enough for a slow disk write, short enough to notice a dead server. */
  rpcDeadlineMsDefault: 5_000,
  /** Deadline of a server-streaming call when the caller gives none (watches live long). */
  rpcStreamDeadlineMsDefault: 60 * 60 * 1000,
  /** Longest deadline a caller may ask for; bounds how long a server holds a call's state. */
  rpcDeadlineMsMax: 24 * 60 * 60 * 1000,
  /** Calls one RPC server runs at once before answering OVERLOADED (bounds server memory and queueing). */
  rpcServerInflightMax: 4096,
  /** Calls one RPC client has outstanding before refusing new ones with OVERLOADED. */
  rpcClientPendingMax: 16 * 1024,
  /** Stream items a client lets a server send ahead of consumption (credit window, backpressure). */
  rpcStreamCreditItems: 64,
  /** Longest service or method name, in characters. */
  rpcNameCharsMax: 128,
  /** Longest key of RPC call metadata (an HTTP gateway `x-cohort-meta-<key>` header), in characters. */
  rpcMetaKeyCharsMax: 128,
  /** Longest value of RPC call metadata (a token, a trace id), in characters; the gateway answers 431 past it. */
  rpcMetaValueCharsMax: 4096,
  /** Entries of RPC call metadata on one call. */
  rpcMetaEntriesMax: 64,
  /** Unacknowledged at-least-once pub/sub messages kept per subscriber and topic; past it the oldest is dropped and reported. */
  pubsubUnackedMax: 4096,
  /** Remote subscriptions (topic × subscriber node) one publisher keeps; past it new ones are refused and counted. */
  pubsubSubscriptionsMax: 16 * 1024,
  /** How often a publisher resends unacknowledged at-least-once messages. */
  pubsubRedeliverMs: 500,
  /** Longest KV key, in bytes; keys are index entries kept in memory on every node (etcd-like keys are paths, far shorter). */
  kvKeyBytesMax: 4 * 1024,
  /** Largest KV value, in bytes; one put must fit a Raft entry with room to spare (etcd's request cap is 1.5 MiB). */
  kvValueBytesMax: 1024 * 1024,
  /** Bytes of store snapshot per item of a `Kv.snapshot` stream (`cohort snapshot save`); small next to a frame, large enough to stream fast. */
  kvSnapshotChunkBytes: 1024 * 1024,
  /** Most operations and comparisons in one KV transaction, nested ones included (etcd's --max-txn-ops default). */
  kvTxnOpsMax: 128,
  /** Deepest nesting of transactions inside a transaction; bounds recursion on input from the network. */
  kvTxnDepthMax: 8,
  /** Shortest lease TTL granted; shorter ones could expire before a keep-alive can cross a failover. */
  kvLeaseTtlMsMin: 1_000,
  /** Longest lease TTL granted (a week); keeps TTL arithmetic and forgotten leases bounded. */
  kvLeaseTtlMsMax: 7 * 24 * 60 * 60 * 1000,
  /** Leases alive at once before a grant answers OVERLOADED; each is replicated state on every node. */
  kvLeasesMax: 100_000,
  /** Leases one leaseExpire command names; more expired leases wait for the next command, so one entry stays small. */
  kvLeaseExpireBatchMax: 1024,
  /** Client sessions (exactly-once) remembered; past it the least recently used is expired (its next command gets SESSION_EXPIRED, never a second apply). */
  kvSessionsMax: 64 * 1024,
  /** Idle time (log time) after which a session expires unless its registration asked otherwise; far above a client's retry window, so a retried write finds its session. */
  kvSessionTtlMsDefault: 10 * 60 * 1000,
  /** Shortest session TTL a registration may ask for; a client's retries of one write must fit in it. */
  kvSessionTtlMsMin: 1_000,
  /** Longest session TTL a registration may ask for (a day); idle sessions cannot pin memory for longer. */
  kvSessionTtlMsMax: 24 * 60 * 60 * 1000,
  /** Largest result a session keeps for retries (estimated wire bytes); a bigger one is replaced by a note that it applied. */
  kvSessionResultBytesMax: 64 * 1024,
  /** Bytes of results all sessions keep together; past it the least recently used sessions are expired. */
  kvSessionResultsBytesMax: 64 * 1024 * 1024,
  /** Longest client id of an exactly-once session, in characters. */
  kvClientIdCharsMax: 128,
  /** MapReduce jobs the coordinator keeps (running and finished); finished ones are forgotten oldest first past it. Each is replicated state. */
  mrJobsMax: 256,
  /** Map tasks (input splits) of one job; the submit command must fit one Raft entry and the job's tasks the coordinator's memory. */
  mrMapTasksMax: 16 * 1024,
  /** Characters of a path (input file, job module, output dir) in a MapReduce command. */
  mrPathCharsMax: 1024,
  /** Characters of all split file names of one submit together, so one submit fits a Raft entry (names repeat per split). */
  mrSplitPathCharsMax: 1024 * 1024,
  /** Bytes (UTF-16 units) of a job's params, keys and values together; params travel with every assignment. */
  mrParamsCharsMax: 64 * 1024,
  /** Attempts of one task, whatever ended them (expiry, lost node, failure); past it the job fails (a runaway guard). */
  mrTaskAttemptsMax: 64,
  /** Default failures of one task before its job fails (Hadoop's mapreduce.map.maxattempts is 4). */
  mrTaskFailuresDefault: 4,
  /** Records of one job skipped as bad (MapReduce §3.7); past it the job fails. */
  mrSkippedRecordsMax: 1024,
  /** Characters of an error message kept in coordinator state. */
  mrErrorCharsMax: 4 * 1024,
  /** Shortest task lease; a shorter one would expire before a keep-alive crosses the log. */
  mrLeaseMsMin: 100,
  /** Longest task lease (an hour); a dead worker's task waits at most this long. */
  mrLeaseMsMax: 60 * 60 * 1000,
  /** Map outputs × reducers of one job: partition files whose sizes the coordinator keeps while the job runs. */
  mrShuffleFilesMax: 1024 * 1024,
  /** Distinct user counters (MapContext.count names) one task may report; each is summed into replicated job state. */
  mrUserCountersMax: 256,
  /** Default age of a running attempt before it may get a backup copy near the end of a phase (MapReduce §3.6). */
  mrBackupAfterMsDefault: 5_000,
  /** Bytes of keys and values one range answer carries; past it the answer is cut and flagged `more` (keeps a reply well inside a frame). */
  kvRangeBytesMax: 4 * 1024 * 1024,
  /** Events buffered for one watch stream; a watcher slower than the writers is cut off with OVERLOADED and resumes from its last revision. */
  kvWatchBufferEventsMax: 16 * 1024,
  /** Bytes of events (keys, values, prevKvs with their encoding) buffered for one watch stream before it is cut off as too slow. */
  kvWatchBufferBytesMax: 8 * 1024 * 1024,
  /** Bytes of events buffered by all watch streams of one node; past it the largest backlogs are cut off first. */
  kvWatchNodeBufferBytesMax: 128 * 1024 * 1024,
  /** Events per watch stream item (catch-up is sent in batches of this many). */
  kvWatchBatchEventsMax: 256,
  /** Watch streams one node serves at once; more answer OVERLOADED (each holds a buffer). */
  kvWatchesMax: 1024,
  /** Default period of watch progress notifications (the current revision, when no event was sent meanwhile). */
  kvWatchProgressMsDefault: 1_000,
  /** Revisions of history the leader keeps before proposing a compaction (history lives in memory and snapshots). */
  kvHistoryRevisionsKept: 10_000,
  /** Default KV storage quota (`--kv-quota-bytes`; see kvVersionOverheadBytes for what counts). The whole store lives in the JS heap at two to three times this while a snapshot is encoded, so it fits a 2-core dev machine and Node's default heap; etcd's 2 GiB assumes a disk-backed store. */
  kvQuotaBytesDefault: 512 * 1024 * 1024,
  /** Bytes a kept version (a put or a delete tombstone) counts toward the KV quota beside its key and value: its numbers, index and change-log entries. */
  kvVersionOverheadBytes: 64,
  /** The NOSPACE alarm disarms once the store is at most this percent of its quota; the margin keeps it from flapping at the edge. */
  kvQuotaDisarmPercent: 90,
  /** How often the leader checks whether to propose a compaction. */
  kvCompactCheckMs: 1_000,
  /** How often the leader replicates lease remaining-TTLs (leaseCheckpoint), so a failover never restores a full TTL. */
  kvLeaseCheckpointMs: 5_000,
  /** How often the leader's lease clock looks for expired leases. */
  kvLeaseTickMs: 100,
  /** Session lanes (concurrent commands) one KV client opens; more calls wait for a free lane. */
  kvClientLanesMax: 1024,
  /** Largest HTTP/JSON gateway request body (JSON is bigger than MessagePack; stays well under a frame). */
  httpBodyBytesMax: 4 * 1024 * 1024,
  /** Default MapReduce input split; one split is one map task (Hadoop uses 128 MiB; smaller keeps 2-core nodes balanced). */
  mrSplitBytesDefault: 32 * 1024 * 1024,
  /** Bytes read from an input file at once by a map task (big reads, few syscalls and decodes). */
  mrReadChunkBytes: 8 * 1024 * 1024,
  /** Longest input line (record); a longer one fails the task instead of growing the read buffer without bound. */
  mrLineBytesMax: 256 * 1024 * 1024,
  /** Most reducers (output partitions) of one job; each map task writes one run file per reducer. */
  mrReducersMax: 4096,
  /** Keys plus buffered values a map task holds before spilling a sorted run to disk (bounds map-side memory). */
  mrMapBufferEntriesMax: 4 * 1024 * 1024,
  /** Estimated bytes of keys and values a map task buffers before spilling (bounds memory when values are big). */
  mrMapBufferBytesMax: 256 * 1024 * 1024,
  /** Estimated bytes of the keys a worker thread keeps between map tasks to find `mapBytes` keys by their bytes (key-table.ts); past it the next buffer starts a fresh index. */
  mrKeyDictionaryBytesMax: 32 * 1024 * 1024,
  /** Bytes of value-arena buffers (value-arena.ts) a worker thread keeps from one map task's buffer to the next, instead of growing fresh ones (page faults, copies); bigger ones are dropped. */
  mrValueArenaKeptBytesMax: 128 * 1024 * 1024,
  /** Estimated bytes of the distinct keys and sums a summing reduce (`fold: sumFold`) holds to add up its runs without merging them; past it the reduce merges them instead. */
  mrReduceSumTableBytesMax: 64 * 1024 * 1024,
  /** A MapReduce worker thread idle this long gives back the buffers it keeps between tasks (value arenas, the read buffer; not its key dictionary), ms. */
  mrThreadIdleReleaseMs: 30_000,
  /** Runs a reduce reads at once (open files, read buffers); with more, it first merges them in passes of this many into temp runs. */
  mrReduceFanInMax: 64,
  /** Largest block of a map-output run file; a bigger length field is corruption (blocks are cut at about 128 KiB; one huge record makes a bigger one). */
  mrRunBlockBytesMax: 64 * 1024 * 1024,
  /** Skipped bad records listed in a map task's result (all are counted). */
  mrSkippedRecordsListedMax: 100,
  /** Characters of a skipped record's error kept in coordinator state (per record, so the list stays small). */
  mrSkippedErrorCharsMax: 200,
  /** Longest a worker's request for a task waits on the leader for work (long poll); bounds held calls. */
  mrTaskRequestWaitMsMax: 2_000,
  /** Longest a job status call waits for the job to change (long poll, MapReduceClient.wait); bounds held calls. */
  mrStatusWaitMsMax: 10_000,
  /** Bytes per shuffle stream item (128 KiB items cost the serving node less CPU than 256 KiB ones); a full credit window (rpcStreamCreditItems) stays far below peerQueueBytesMax. */
  mrShuffleChunkBytes: 128 * 1024,
  /** Bytes a node serving the shuffle reads from a map run at once (one trip through libuv's pool), cut into mrShuffleChunkBytes items. */
  mrShuffleReadBytes: 1024 * 1024,
  /** Bytes of fetched map runs one reduce attempt keeps in memory and hands to its thread instead of writing them to temp files and reading them back (runs past it go through files); a node holds at most its worker threads times this. */
  mrShuffleMemoryBytesMax: 64 * 1024 * 1024,
  /** Least time a worker thread gets to boot and load (compile) a job before its task counts as stalled. */
  mrThreadStartupMsMin: 30_000,
  /** Members (voters and learners) a cluster's address book holds; Raft clusters are 3-7 voters, and each member is one peer link on every node. */
  clusterMembersMax: 64,
  /** NOT_LEADER redirects a membership call follows before giving up (an election moves the leader once or twice). */
  memberRedirectsMax: 8,
  /** How long a membership change waits, in election timeouts, for the previous change to commit (CONFIG_CHANGE_PENDING) before it fails. */
  memberChangeWaitElectionsMax: 10,
  /** Leader duty passes (one per election timeout) an address-book entry of a non-member survives before the leader deletes it: a crash between an add's or a removal's two steps leaves one. */
  memberBookStalePasses: 3,
  /** Removed node ids the address book remembers, so that their certificates cannot rejoin by themselves; the oldest is forgotten past this. */
  memberRetiredMax: 1_024,
  /** Largest request head (request line + headers) the gateway reads; past it 431. Node's own default, like HAProxy's 16 KiB buffers. */
  gatewayHeaderBytesMax: 16 * 1024,
  /** Default largest request body the gateway forwards; past it 413. */
  gatewayBodyBytesDefault: 16 * 1024 * 1024,
  /** Ceiling of the configurable request body limit. */
  gatewayBodyBytesMax: 1024 * 1024 * 1024,
  /** Request bodies up to this size are read whole before forwarding, so a failed try can be sent again; bigger ones stream and are retried only if no byte left. */
  gatewayRetryBodyBytesMax: 64 * 1024,
  /** Tries of one request (the first included): one retry after a try that may have reached a backend, others only after tries that never did. */
  gatewayTriesMax: 3,
  /** Connections the gateway opens to one backend at most; more requests queue in its pool. */
  gatewayUpstreamConnectionsMax: 512,
  /** Replicas one replicated request fans out to at most. */
  gatewayReplicasMax: 16,
  /** Largest reply body of a replicated request (replies are held whole to be compared). */
  gatewayReplicatedBodyBytesMax: 4 * 1024 * 1024,
  /** Silence after which the gateway closes a client connection (a client stalled mid-request holds a buffer); longer than its keep-alive idle time. */
  gatewayClientIdleMs: 120_000,
  /** Longest deadline of one request through the gateway. */
  gatewayTimeoutMsMax: 3_600_000,
  /** Members one failure detector tracks (itself excluded); past it a new member is ignored, so gossip cannot grow its table without bound. */
  swimMembersMax: 10_000,
  /** Membership updates piggybacked on one detector message (SWIM §4.3: dissemination rides on probes and acks); 16 updates stay under ~1 KiB, one datagram's worth as memberlist packs them. */
  swimPiggybackUpdatesMax: 16,
  /** Members listed in one join answer (the joiner learns the rest by gossip). */
  swimJoinMembersMax: 2_048,
  /** Indirect probes (ping-req) this member relays at once for others; past it a request is ignored (the requester sees a missed probe). */
  swimRelaysMax: 1_024,
  /** Longest member address carried by the detector, in characters (host:port, or a URL). */
  swimAddressCharsMax: 256,
  /** Largest incarnation number accepted (keeps +1 arithmetic exact). */
  swimIncarnationMax: 2 ** 52,
  /** Default protocol period (SWIM's T'): one direct probe per member per period. */
  swimPeriodMsDefault: 1_000,
  /** Shortest protocol period a detector may be configured with. */
  swimPeriodMsMin: 10,
  /** Default time a direct ping waits for its ack before indirect probes go out (memberlist's LAN figure, half a period). */
  swimPingTimeoutMsDefault: 400,
  /** Default probes a member starts per protocol period, to different members (r): with one, a crashed member goes unprobed for k periods with probability ~e^-k, 4.6 periods at the 99th percentile; with three, ~e^-3k (1.5 periods), for three times the probe messages, still a constant per member. */
  swimProbesPerPeriodDefault: 3,
  /** Most probes a member may be configured to start per period. */
  swimProbesPerPeriodMax: 16,
  /** Default number of members asked to probe indirectly (SWIM's k). */
  swimIndirectProbesDefault: 3,
  /** Most members asked to probe indirectly per probe. */
  swimIndirectProbesMax: 16,
  /** Default suspicion multiplier α: a suspect is declared failed after α·max(1, log10 n) periods (Lifeguard / memberlist). */
  swimSuspicionMultDefault: 4,
  /** Default retransmit multiplier λ: an update is piggybacked λ·ceil(log10(n+1)) times (SWIM §4.3). */
  swimRetransmitMultDefault: 4,
  /** Time between join requests to the seeds until one answers. */
  swimJoinRetryMs: 1_000,
  /** Shortest timer a detector shell arms (a core deadline already due runs after this, never in a loop). */
  swimTickMsMin: 1,
  /** Members a leaving member tells directly (besides piggybacking). */
  swimLeaveFanout: 4,
  /** Default TTL of a service instance's registration lease: a dead instance disappears from resolvers this long after its last renewal. */
  namingLeaseTtlMsDefault: 5_000,
  /** Shortest registration lease TTL (renewals every third of it must not flood the leader). */
  namingLeaseTtlMsMin: 1_000,
  /** Longest registration lease TTL (a dead instance stays listed this long). */
  namingLeaseTtlMsMax: 300_000,
  /** Largest registry entry (JSON: instance id, node, address, metadata), in bytes; bigger ones are refused at registration and skipped by resolvers. */
  namingEntryBytesMax: 8 * 1024,
  /** Metadata keys of one registered instance at most. */
  namingMetadataKeysMax: 32,
  /** Instances one resolver keeps per service at most; more are skipped with a warning (a registry flooded by a bad client must not exhaust callers). */
  namingInstancesMax: 1_000,
  /** Time a name-based client skips an instance after a failed try, in ms (it stays registered until its lease expires). */
  namingSuspectMs: 1_000,
  /** Registry entries read for detector seeds when an instance joins naming's detector group (one join answer suffices; a few in case some are dead). */
  namingDetectorSeedsMax: 8,
  /** Longest pause between resolver re-list attempts while the cluster is unreachable, in ms. */
  namingRelistDelayMsMax: 2_000,
  /** Default longest try of an idempotent call on one instance, in ms: a hung instance costs this, then the call goes elsewhere. */
  namingTryTimeoutMsDefault: 2_000,
  /** Worker processes of the gateway's HTTP proxy at most (each a whole Node process; a few per core is already too many). */
  gatewayWorkersMax: 64,
  /** Time a gateway worker has to answer the admin port's snapshot request before the page leaves it out. */
  gatewayWorkerReplyMs: 2_000,
  /** Time a gateway worker has to close its connections and exit when the gateway stops, before SIGKILL. */
  gatewayWorkerCloseMs: 10_000,
  /** Pause before a dead gateway worker is forked again (a worker that crashes at start cannot spin). */
  gatewayWorkerRestartMs: 1_000,
} as const;

/** The type of {@link limits}. */
export type Limits = typeof limits;

function check(condition: boolean, relation: string): void {
  if (!condition) throw new AssertionError(`limits.ts: ${relation} does not hold`);
}

/** Checks the relations between bounds; runs at load. Exported for tests on altered copies. */
export function checkLimits(l: Limits): void {
  check(
    l.snapshotChunkBytesMax + 64 * 1024 <= l.frameBytesMax,
    'snapshotChunkBytesMax + headers <= frameBytesMax',
  );
  check(l.frameBytesMax < 2 ** 32, 'frameBytesMax fits the u32 length prefix');
  check(l.protocolVersion <= l.protocolVersionMax, 'protocolVersion <= protocolVersionMax');
  check(
    l.batchFrameBytesMax + l.batchRecordHeaderBytes <= l.frameBytesMax,
    'a full batch frame is within frameBytesMax',
  );
  check(
    l.batchFrameBytesMax <= l.inputBufferedBytesMax / 2,
    'two batch frames fit the node-wide input budget',
  );
  check(l.batchFrameMessagesMax > 0, 'batchFrameMessagesMax > 0');
  check(l.writeBatchBytesMax <= l.peerQueueBytesMax, 'writeBatchBytesMax <= peerQueueBytesMax');
  check(l.frameBytesMax <= l.peerQueueBytesMax, 'one maximal frame fits the peer queue');
  check(
    l.frameBytesMax * 2 <= l.inputBufferedBytesMax,
    'two maximal frames fit the node-wide input budget',
  );
  check(
    l.keepaliveIntervalMs * 3 <= l.idleTimeoutMs,
    'a live peer sends at least three keepalives within idleTimeoutMs',
  );
  check(
    l.handshakesPendingPerAddressMax > 0 &&
      l.handshakesPendingPerAddressMax <= l.handshakesPendingMax,
    '0 < handshakesPendingPerAddressMax <= handshakesPendingMax',
  );
  check(
    0 < l.swimJoinMembersMax && l.swimJoinMembersMax <= l.swimMembersMax,
    '0 < swimJoinMembersMax <= swimMembersMax',
  );
  check(
    l.swimPeriodMsMin <= l.swimPeriodMsDefault &&
      l.swimPingTimeoutMsDefault < l.swimPeriodMsDefault,
    'swimPeriodMsMin <= swimPeriodMsDefault, and a direct ping times out within its period',
  );
  check(
    1 <= l.swimIndirectProbesDefault && l.swimIndirectProbesDefault <= l.swimIndirectProbesMax,
    '1 <= swimIndirectProbesDefault <= swimIndirectProbesMax',
  );
  check(l.messageNestingDepthMax >= 16, 'messageNestingDepthMax leaves room for real messages');
  check(
    l.raftTermJumpMax < l.raftTermMax && l.raftTermMax + l.raftTermJumpMax < 2 ** 53,
    'raftTermJumpMax < raftTermMax, and term arithmetic stays below 2^53',
  );
  check(l.raftIndexMax + l.raftAppendEntriesMax < 2 ** 53, 'index arithmetic stays below 2^53');
  check(l.logRepeatBurstMax >= 1 && l.logRepeatWindowMs > 0, 'the log limiter lets lines through');
  check(
    l.reconnectDelayMsMin > 0 && l.reconnectDelayMsMin <= l.reconnectDelayMsMax,
    '0 < reconnectDelayMsMin <= reconnectDelayMsMax',
  );
  check(l.peerQueueMessagesMax > 0, 'peerQueueMessagesMax > 0');
  check(
    l.walRecordBytesMax + 64 * 1024 <= l.walSegmentBytesMax,
    'one maximal WAL record plus a segment header fits a segment',
  );
  check(
    l.frameBytesMax + 64 * 1024 <= l.walRecordBytesMax,
    'a frame of entries fits one WAL record',
  );
  check(l.walBatchBytesMax <= l.walSegmentBytesMax, 'walBatchBytesMax <= walSegmentBytesMax');
  check(l.walBatchBytesMax <= l.walQueueBytesMax, 'walBatchBytesMax <= walQueueBytesMax');
  check(l.snapshotsRetainedMax >= 1, 'snapshotsRetainedMax >= 1');
  check(
    l.raftEntryBytesMax + 64 * 1024 <= l.frameBytesMax,
    'raftEntryBytesMax + headers <= frameBytesMax',
  );
  check(
    l.raftAppendBytesMax + l.raftEntryBytesMax + 64 * 1024 <= l.frameBytesMax,
    'an AppendEntries batch (soft cap + one overshooting entry) fits a frame',
  );
  check(l.raftAppendEntriesMax > 0 && l.raftInflightAppendsMax > 0, 'raft batch bounds > 0');
  check(
    l.rpcDeadlineMsDefault <= l.rpcDeadlineMsMax &&
      l.rpcStreamDeadlineMsDefault <= l.rpcDeadlineMsMax,
    'RPC default deadlines <= rpcDeadlineMsMax',
  );
  check(
    l.mrShuffleReadBytes >= l.mrShuffleChunkBytes &&
      l.mrShuffleChunkBytes * l.rpcStreamCreditItems <= l.peerQueueBytesMax / 4,
    'a shuffle read holds at least one item, and a credit window of items stays far below peerQueueBytesMax',
  );
  check(
    l.rpcStreamCreditItems >= 2,
    'rpcStreamCreditItems >= 2 (credit is returned at half the window)',
  );
  check(l.httpBodyBytesMax + 64 * 1024 <= l.frameBytesMax, 'an HTTP body fits a frame');
  check(
    l.gatewayRetryBodyBytesMax <= l.gatewayBodyBytesDefault &&
      l.gatewayBodyBytesDefault <= l.gatewayBodyBytesMax,
    'gatewayRetryBodyBytesMax <= gatewayBodyBytesDefault <= gatewayBodyBytesMax',
  );
  check(l.gatewayTriesMax >= 2, 'the gateway can retry once (gatewayTriesMax >= 2)');
  check(
    l.kvKeyBytesMax + l.kvValueBytesMax + 64 * 1024 <= l.raftEntryBytesMax,
    'one KV put (key + value + headers) fits a Raft entry',
  );
  check(
    l.kvLeaseTtlMsMin > 0 && l.kvLeaseTtlMsMin <= l.kvLeaseTtlMsMax,
    '0 < kvLeaseTtlMsMin <= kvLeaseTtlMsMax',
  );
  check(
    l.mrJobsMax > 0 && l.mrMapTasksMax > 0 && l.mrReducersMax > 0 && l.mrTaskAttemptsMax > 0,
    'MapReduce bounds > 0',
  );
  check(
    l.mrReduceFanInMax >= 2,
    'a reduce merges at least two runs at once (mrReduceFanInMax >= 2)',
  );
  check(
    l.mrTaskFailuresDefault >= 1 && l.mrTaskFailuresDefault <= l.mrTaskAttemptsMax,
    '1 <= mrTaskFailuresDefault <= mrTaskAttemptsMax',
  );
  check(
    (l.mrSplitPathCharsMax + l.mrParamsCharsMax) * 3 + l.mrMapTasksMax * 32 + 64 * 1024 <=
      l.raftEntryBytesMax,
    'a maximal submitJob (UTF-8 paths, split offsets, headers) fits a Raft entry',
  );
  check(l.mrLeaseMsMin > 0 && l.mrLeaseMsMin <= l.mrLeaseMsMax, '0 < mrLeaseMsMin <= mrLeaseMsMax');
  check(
    'user:'.length + l.userNameCharsMax + 1 + 12 <= l.idBytesMax,
    "a user's connection id user:<name>:<12 hex> fits idBytesMax",
  );
  check(l.kvTxnOpsMax > 0 && l.kvTxnDepthMax > 0 && l.kvSessionsMax > 0, 'KV bounds > 0');
  check(
    0 < l.kvSessionTtlMsMin &&
      l.kvSessionTtlMsMin <= l.kvSessionTtlMsDefault &&
      l.kvSessionTtlMsDefault <= l.kvSessionTtlMsMax,
    '0 < kvSessionTtlMsMin <= kvSessionTtlMsDefault <= kvSessionTtlMsMax',
  );
  check(
    0 < l.kvSessionResultBytesMax && l.kvSessionResultBytesMax <= l.kvSessionResultsBytesMax,
    '0 < kvSessionResultBytesMax <= kvSessionResultsBytesMax',
  );
  check(
    l.kvRangeBytesMax + l.kvKeyBytesMax + l.kvValueBytesMax + 64 * 1024 <= l.frameBytesMax,
    'a range answer (cap + one overshooting key-value) fits a frame',
  );
  check(
    l.kvQuotaDisarmPercent > 0 && l.kvQuotaDisarmPercent < 100,
    '0 < kvQuotaDisarmPercent < 100',
  );
  check(
    l.kvQuotaBytesDefault >= 4 * (l.kvKeyBytesMax + l.kvValueBytesMax + l.kvVersionOverheadBytes),
    'the default KV quota holds a few maximal puts',
  );
  check(
    l.kvSnapshotChunkBytes > 0 && l.kvSnapshotChunkBytes + 64 * 1024 <= l.frameBytesMax,
    'a snapshot stream item fits a frame',
  );
  check(l.snapshotLogBytesMax >= l.raftEntryBytesMax, 'snapshotLogBytesMax >= raftEntryBytesMax');
  check(
    l.kvWatchBatchEventsMax <= l.kvWatchBufferEventsMax,
    'kvWatchBatchEventsMax <= kvWatchBufferEventsMax',
  );
  check(
    l.kvWatchBufferBytesMax <= l.kvWatchNodeBufferBytesMax,
    'kvWatchBufferBytesMax <= kvWatchNodeBufferBytesMax',
  );
  check(
    l.mrReadChunkBytes > 0 && l.mrReadChunkBytes <= l.mrLineBytesMax,
    '0 < mrReadChunkBytes <= mrLineBytesMax',
  );
  check(
    l.namingLeaseTtlMsMin <= l.namingLeaseTtlMsDefault &&
      l.namingLeaseTtlMsDefault <= l.namingLeaseTtlMsMax,
    'namingLeaseTtlMsMin <= namingLeaseTtlMsDefault <= namingLeaseTtlMsMax',
  );
  check(l.namingEntryBytesMax <= l.kvValueBytesMax, 'a registry entry fits a KV value');
}

checkLimits(limits);
