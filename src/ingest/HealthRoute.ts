/**
 * GET /health: liveness, whether delivery into the audit room is held and why (DeliveryHealth.ts), and the audit
 * room's safety (RoomSafety.ts), as JSON. Always 200 while the appservice runs (an unsafe room is a warning for
 * the admin, not a reason to stop recording); `status` is "degraded" while delivery is held, or stalled (the host
 * module's batches refused for their token, or overdue by its checkpoints; `ingest` says when one last came).
 */
import type { Request, Response } from "express";
import type { AppService } from "matrix-appservice-bridge";
import type { RoomProblem } from "../matrix/RoomSafety.js";
import type { DeliveryState, IngestState } from "./DeliveryHealth.js";

interface Layer {
    route?: { path?: string };
}

export function addHealthRoute(
    appService: AppService,
    roomProblems: () => Promise<RoomProblem[] | null>,
    delivery: () => DeliveryState = () => ({ status: "ok" }),
    ingest: () => IngestState | null = () => null,
): void {
    const app = appService.expressApp;
    app.get("/health", (_req: Request, res: Response) => {
        const answer = (auditRoom: { problems: RoomProblem[] } | null) => {
            const state = delivery();
            res.json({
                status: state.status === "ok" ? "ok" : "degraded",
                delivery: state,
                ingest: ingest(),
                audit_room: auditRoom,
            });
        };
        roomProblems().then(
            (problems) => answer(problems === null ? null : { problems }),
            () => answer(null),
        );
    });
    // matrix-appservice registers a plain "OK" /health in its constructor, before this one, and Express serves
    // the first matching route: move ours just before it.
    const stack = (app as unknown as { _router: { stack: Layer[] } })._router.stack;
    const ours = stack.pop() as Layer;
    const theirs = stack.findIndex((layer) => layer.route?.path === "/health");
    stack.splice(theirs === -1 ? stack.length : theirs, 0, ours);
}
