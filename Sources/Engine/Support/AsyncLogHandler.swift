import Logging

/// A swift-log handler whose lines go through a `LogSink`: the caller's
/// thread formats the line and copies it into the sink, never waiting on
/// the reader of the log.
///
/// The line is formatted by swift-log's own `StreamLogHandler`, given the
/// sink as its output stream, so it is byte for byte what the server wrote
/// before (`<timestamp> <level> <label>: [<metadata> ][<source>] <message>`):
/// tests and scripts read some lines ("listening on ...").
struct AsyncLogHandler: LogHandler {
    private var formatter: StreamLogHandler

    init(label: String, sink: LogSink,
         metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider)
    {
        formatter = StreamLogHandler(label: label, stream: SinkStream(sink: sink), metadataProvider: metadataProvider)
    }

    func log(event: LogEvent) { formatter.log(event: event) }

    var logLevel: Logger.Level {
        get { formatter.logLevel }
        set { formatter.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { formatter.metadata }
        set { formatter.metadata = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { formatter.metadataProvider }
        set { formatter.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { formatter[metadataKey: key] }
        set { formatter[metadataKey: key] = newValue }
    }

    /// `StreamLogHandler` writes each line with one `write` call, newline
    /// included: one call is one line for the sink.
    private struct SinkStream: TextOutputStream, Sendable {
        let sink: LogSink
        mutating func write(_ string: String) { sink.enqueue(string) }
    }
}
