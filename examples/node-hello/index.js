'use strict';
// The smallest FunctionGraph Node.js event function (async style).

exports.handler = async (event, context) => {
  const logger = context.getLogger();
  const name = (event && event.name) || 'world';
  const greeting = context.getUserData('GREETING', 'Hello');
  // Lines carrying the [Function] marker are also delivered to telemetry subscribers.
  logger.info('[Function] node-hello: greeting %s', name);
  return {
    statusCode: 200,
    isBase64Encoded: false,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      message: `${greeting}, ${name}!`,
      requestId: context.getRequestID(),
      function: context.getFunctionName(),
      memoryMB: context.getMemorySize(),
      remainingMs: context.getRemainingTimeInMilliSeconds(),
    }),
  };
};
