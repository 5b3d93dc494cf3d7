/**
 * GET /health: liveness plus the audit room's safety (RoomSafety.ts), as JSON. Always 200 while the appservice
 * runs: an unsafe room is a warning for the admin, not a reason to stop recording.
 */
import type { Request, Response } from "express";
import type { AppService } from "matrix-appservice-bridge";
import type { RoomProblem } from "../matrix/RoomSafety.js";

interface Layer {
    route?: { path?: string };
}

export function addHealthRoute(appService: AppService, roomProblems: () => Promise<RoomProblem[] | null>): void {
    const app = appService.expressApp;
    app.get("/health", (_req: Request, res: Response) => {
        roomProblems().then(
            (problems) => res.json({ status: "ok", audit_room: problems === null ? null : { problems } }),
            () => res.json({ status: "ok", audit_room: null }),
        );
    });
    // matrix-appservice registers a plain "OK" /health in its constructor, before this one, and Express serves
    // the first matching route: move ours just before it.
    const stack = (app as unknown as { _router: { stack: Layer[] } })._router.stack;
    const ours = stack.pop() as Layer;
    const theirs = stack.findIndex((layer) => layer.route?.path === "/health");
    stack.splice(theirs === -1 ? stack.length : theirs, 0, ours);
}
