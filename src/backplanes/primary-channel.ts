/**
 * Sends a message from a worker to the cluster's primary; `failed` hears of a channel that is
 * closed or breaks (the log and presence both speak over it).
 */
export function postToPrimary(message: object, failed?: (error: Error) => void): void {
  const onError = (error: Error | null): void => {
    if (error !== null) failed?.(error);
  };
  try {
    if (!process.connected) throw new Error("the cluster's primary process is gone");
    process.send!(message, undefined, undefined, onError);
  } catch (error) {
    onError(error as Error);
  }
}
