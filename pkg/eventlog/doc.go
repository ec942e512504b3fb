// Package eventlog is the JetStream layout that Bullseye's ingest service
// writes and its feature service reads: stream and bucket names and
// configurations, the subjects records are stored on, the encoding of
// customer ids into subject tokens, the HMAC pseudonymiser, and the erasure
// list with its audit records.
//
// # Streams and buckets
//
//	name                          kind    subjects / keys                              holds
//	BULLSEYE_EVENTS               stream  bullseye.events.<p>.<kind>.<token>.<type>    StoredEvent records (protobuf)
//	BULLSEYE_DEADLETTERS          stream  bullseye.deadletters.<kind>.<token>          DeadLetter records (protobuf)
//	                                      bullseye.deadletters.unidentified            dead letters without a usable customer id
//	BULLSEYE_AUDIT                stream  bullseye.audit.erasure.<erasure id>.<what>   AuditRecord and ErasureApplied (JSON); no deletes, no purges
//	bullseye_imports              KV      <sha-256 of the file, hex>                   import progress (owned by ingest)
//	bullseye_erasures             KV      <subject hash>                               ErasureRecord (JSON): the erasure list
//	bullseye_deadletter_replays   KV      <dead letter id>                             replay time of replayed dead letters
//
// In an events subject, <p> is Partition of the id (0 to Partitions-1), <kind>
// is KindUser ("u") for a customer id or KindAnonymous ("a") for an anonymous
// visitor id, <token> is EncodeID of the id, and <type> is the record's type
// (TypeTrack, TypeIdentify, TypeConsent, TypeErasure). A feature replica that
// owns partition p consumes PartitionFilter(p); all records of one customer
// are on one partition, in stream order. Only customer ids (never pseudonyms)
// appear in subjects; purging a customer's subjects removes every record of
// them (see Purge).
//
// # Messages
//
// The data of an events message is a protobuf-encoded
// bullseye.ingest.v1.StoredEvent whose personal fields are already
// pseudonymised (see Pseudonymiser). Headers: HeaderMsgID (the record's
// message id, which JetStream de-duplicates within the stream's Duplicates
// window), HeaderType (the record's type, as in the subject) and the W3C
// trace context ("Traceparent", "Tracestate", "Baggage"), written with
// go.opentelemetry.io/otel/propagation.HeaderCarrier over the message's
// header, so a consumer continues the trace of the ingest call.
//
// # Erasure
//
// ForgetUser (ingest) adds the customer's SubjectHash to the erasure list
// (the bullseye_erasures bucket; every service consults it through an
// ErasureList), purges the customer's subjects, then publishes one
// TypeErasure record on each of the customer's subjects. A feature service
// that consumes such a record must, in this order:
//
//  1. delete the customer's online state and its history (it is
//     idempotent: a record may be delivered again after a crash);
//  2. delete the erasure record itself from BULLSEYE_EVENTS by its stream
//     sequence (jetstream.Stream.DeleteMsg), since it names the customer;
//  3. publish an ErasureApplied record (JSON) on
//     AuditAppliedSubject(record.ErasureId), naming the record's stream
//     sequence and how many keys it deleted.
//
// Ingest waits a bounded time for step 3 (and for the record to be gone)
// before answering ForgetUser, and reports the deleted keys on the receipt;
// without them in time, the receipt has no feature-state count and the
// audit record says it is pending. Records of an erased customer that
// arrive later are refused by ingest; a consumer still checks the erasure
// list before it uses a record.
package eventlog
