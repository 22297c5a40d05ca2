"use strict";

const Koa = require("koa");

const KoaRouter = require("@koa/router");
const bodyParser = require("koa-bodyparser");

const app = new Koa();
const router = new KoaRouter();

// Logger middleware - captures X-Cff-Request-Id and adds it to all logs
app.use(async (ctx, next) => {
  const requestId = ctx.get("X-Cff-Request-Id") || "no-request-id";

  // Function to format timestamp as yyyy-mm-ddThh:mm:ss.SSSZ
  const getTimestamp = () => {    
    return new Date().toISOString(); 
  };

  // Create a contextual logger that includes timestamp and request ID
  ctx.logger = {
    log: (...args) => console.log(`${getTimestamp()} [${requestId}]`, ...args),
    info: (...args) =>
      console.info(`${getTimestamp()} [INFO] [${requestId}]`, ...args),
    warn: (...args) =>
      console.warn(`${getTimestamp()} [WARN] [${requestId}]`, ...args),
    error: (...args) =>
      console.error(`${getTimestamp()} [ERROR] [${requestId}]`, ...args),
  };

  ctx.logger.info(`${ctx.method} ${ctx.url} - Request received`);

  await next();

  ctx.logger.info(`${ctx.method} ${ctx.url} - Response: ${ctx.status}`);
});

app.use(bodyParser());
app.use(router.routes());
app.use(router.allowedMethods());

router.post("/init", async (ctx) => {
  ctx.logger.log("init called with body:", ctx.request.body);
  ctx.response.type = "application/json";
  ctx.response.body = "POST Init called !";
  ctx.response.status = 200;
});

router.get("/index", async (ctx) => {
  ctx.logger.log("Received GET request with query:", ctx.request.query);

  ctx.response.type = "application/json";
  ctx.response.body = "Hello World, user!";
  ctx.response.status = 200;
});

router.post("/index", async (ctx) => {
  const body = ctx.request.body;

  ctx.logger.log("Received body:", body);
  ctx.logger.log("Key is: ", body.key);

  // Log all headers
  const headers = ctx.request.headers;
  ctx.logger.log("All request headers:");
  for (const [key, value] of Object.entries(headers)) {
    ctx.logger.log(`  ${key}: ${value}`);
  }

  ctx.response.type = "application/json";
  ctx.response.body = "Hello World, user!";
  ctx.response.status = 200;
});

app.listen(8000);
