// The errors drover-trace reports, each carrying the exit status the CLI maps it to.

export class TraceError extends Error {
  exitCode = 1;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad arguments or an input that cannot be opened: exit 2, as every drover tool does. */
export class TraceUsageError extends TraceError {
  override exitCode = 2;
}
