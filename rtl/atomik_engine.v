// atomik_engine -- batched delta accumulation engine.
//
// Synthesizable Verilog-2005. See rtl/README.md for the register map, the
// op / result word formats and the pipeline and hazard rules.
//
// Summary:
//   * NUM_BANKS banks (1, 2, 4 or 8), each SLOTS_PER_BANK slots (power of two,
//     >= 2) of {accumulator[63:0], reference[63:0]} in one inferred
//     simple-dual-port block RAM per bank (read-first, 1-cycle read latency).
//   * Global slot s lives in bank (s mod NUM_BANKS) at index (s / NUM_BANKS):
//     bank = low bits, index = high bits.
//   * The group (add / xor) is carried in every op, not stored per slot: the
//     host knows the group of each column.
//   * Op stream: one beat = NUM_BANKS lanes of 128-bit ops + a lane mask,
//     valid/ready. Lanes issue in order; every cycle the longest prefix of the
//     remaining lanes whose banks are pairwise distinct issues (a MERGE needs
//     all banks and issues alone). A beat whose lanes hit distinct banks is
//     accepted in one cycle: one op per cycle per bank.
//   * Read-after-write on the same slot in back-to-back cycles is forwarded
//     from the write-back stage (no stall); the FORWARDS counter counts it.
//   * Result stream: one beat = NUM_BANKS lanes of 128-bit results + mask, in
//     program order. Back-pressure on it stalls the whole pipeline.
//   * CSR port: a plain register-file interface (addr / we / wdata / re /
//     rdata one cycle after re). It is NOT an AXI-Lite slave; a board build
//     needs an AXI-Lite-to-register-file bridge in front of it.
`timescale 1ns / 1ps
`default_nettype none

module atomik_engine #(
    parameter integer NUM_BANKS      = 4,
    parameter integer SLOTS_PER_BANK = 256
) (
    input  wire                     clk,
    input  wire                     rst,        // synchronous, active high

    // op stream
    input  wire                     in_valid,
    output wire                     in_ready,
    input  wire [NUM_BANKS*128-1:0] in_data,
    input  wire [NUM_BANKS-1:0]     in_mask,

    // result stream
    output reg                      out_valid,
    input  wire                     out_ready,
    output reg  [NUM_BANKS*128-1:0] out_data,
    output reg  [NUM_BANKS-1:0]     out_mask,
    output wire                     out_last,   // AXI-Stream TLAST, see RESULT_PACKET

    // control / status register file
    input  wire [7:0]               csr_addr,
    input  wire                     csr_we,
    input  wire [31:0]              csr_wdata,
    input  wire                     csr_re,
    output reg  [31:0]              csr_rdata
);

    // ------------------------------------------------------------------
    // constants
    // ------------------------------------------------------------------
    localparam integer L     = NUM_BANKS;             // lanes per beat
    localparam integer BSH   = $clog2(NUM_BANKS);     // bank bits (0 for 1 bank)
    localparam integer BW    = (BSH > 0) ? BSH : 1;   // storage width of a bank number
    localparam integer IW    = $clog2(SLOTS_PER_BANK);// index bits
    localparam [32:0]  TOTAL = NUM_BANKS * SLOTS_PER_BANK;
    localparam [31:0]   BMASK32   = NUM_BANKS - 1;
    localparam [31:0]   LASTIDX32 = SLOTS_PER_BANK - 1;
    localparam [BW-1:0] BMASK     = BMASK32[BW-1:0];
    localparam [IW-1:0] LASTIDX   = LASTIDX32[IW-1:0];

    localparam [7:0] OP_NOP     = 8'd0;
    localparam [7:0] OP_LOAD    = 8'd1;
    localparam [7:0] OP_ACCUM   = 8'd2;
    localparam [7:0] OP_READ    = 8'd3;
    localparam [7:0] OP_PENDING = 8'd4;
    localparam [7:0] OP_MERGE   = 8'd5;

    localparam [31:0] ID_MAGIC = 32'h4154_4D4B;       // "ATMK"
    localparam [31:0] VERSION  = 32'h0001_0000;       // 1.0

    // CSR offsets
    localparam [7:0] A_ID       = 8'h00;
    localparam [7:0] A_VERSION  = 8'h04;
    localparam [7:0] A_BANKS    = 8'h08;
    localparam [7:0] A_SLOTS    = 8'h0C;
    localparam [7:0] A_CONTROL  = 8'h10;
    localparam [7:0] A_STATUS   = 8'h14;
    localparam [7:0] A_ERRORS   = 8'h18;
    localparam [7:0] A_ERRCOUNT = 8'h1C;
    localparam [7:0] A_SCRATCH  = 8'h20;
    localparam [7:0] A_PACKET   = 8'h24;
    // 64-bit counters: LO at 0x40 + 8*k, HI at 0x44 + 8*k, k = 0..7
    localparam integer NCNT = 8;
    localparam [7:0] A_CNT0   = 8'h40;
    localparam [7:0] A_CNTEND = 8'h80;               // 0x40 + 8 * NCNT

    // ------------------------------------------------------------------
    // control state
    // ------------------------------------------------------------------
    reg           clr_req;      // RAM clear requested, waiting for pipeline drain
    reg           clr_active;   // RAM clear sweep running
    reg  [IW-1:0] clr_idx;
    wire          clr_block = clr_req | clr_active;

    reg  [L-1:0]  done_q;       // lanes of the current beat already issued
    wire          en = ~out_valid | out_ready;   // pipeline advance

    // ------------------------------------------------------------------
    // lane decode and dispatch (combinational)
    // ------------------------------------------------------------------
    reg  [L-1:0]   pend;
    reg  [L-1:0]   issue;
    reg  [L-1:0]   l_bankop;    // lane uses exactly one bank
    reg  [L-1:0]   l_merge;     // lane uses every bank
    reg  [L-1:0]   l_rangeerr;  // slot / index out of range
    reg  [L-1:0]   l_badop;     // unknown opcode
    reg  [L-1:0]   l_result;    // lane produces a result word
    reg  [L*BW-1:0] l_bank;
    reg  [L-1:0]   used;
    reg            blocked;
    integer        i, b;
    reg  [7:0]     t_op;
    reg  [31:0]    t_slot;

    always @* begin
        pend      = (in_valid & en & ~clr_block) ? (in_mask & ~done_q) : {L{1'b0}};
        l_bankop  = {L{1'b0}};
        l_merge   = {L{1'b0}};
        l_rangeerr= {L{1'b0}};
        l_badop   = {L{1'b0}};
        l_result  = {L{1'b0}};
        l_bank    = {L*BW{1'b0}};
        for (i = 0; i < L; i = i + 1) begin
            t_op   = in_data[i*128+96 +: 8];
            t_slot = in_data[i*128+64 +: 32];
            l_bank[i*BW +: BW] = t_slot[BW-1:0] & BMASK;
            case (t_op)
                OP_NOP: ;
                OP_LOAD, OP_ACCUM, OP_READ, OP_PENDING: begin
                    if ({1'b0, t_slot} < TOTAL) l_bankop[i] = 1'b1;
                    else                        l_rangeerr[i] = 1'b1;
                    l_result[i] = (t_op == OP_READ) | (t_op == OP_PENDING);
                end
                OP_MERGE: begin
                    if (t_slot < SLOTS_PER_BANK) l_merge[i] = 1'b1;
                    else                         l_rangeerr[i] = 1'b1;
                    l_result[i] = 1'b1;
                end
                default: l_badop[i] = 1'b1;
            endcase
        end
        // in-order prefix issue, one op per bank per cycle
        used    = {L{1'b0}};
        blocked = 1'b0;
        issue   = {L{1'b0}};
        for (i = 0; i < L; i = i + 1) begin
            if (pend[i] && !blocked) begin
                if (l_merge[i]) begin
                    if (used == {L{1'b0}}) begin
                        issue[i] = 1'b1;
                        used     = {L{1'b1}};
                    end else begin
                        blocked = 1'b1;
                    end
                end else if (l_bankop[i]) begin
                    if (used[l_bank[i*BW +: BW]]) begin
                        blocked = 1'b1;
                    end else begin
                        issue[i] = 1'b1;
                        used[l_bank[i*BW +: BW]] = 1'b1;
                    end
                end else begin
                    issue[i] = 1'b1;   // NOP / error lanes need no bank
                end
            end
        end
    end

    assign in_ready = in_valid & en & ~clr_block &
                      ((in_mask & ~done_q & ~issue) == {L{1'b0}});

    // per-bank issue signals
    reg  [L-1:0]    bi_valid;
    reg  [L*8-1:0]  bi_op;
    reg  [L-1:0]    bi_grp;
    reg  [L*IW-1:0] bi_idx;
    reg  [L*64-1:0] bi_val;
    /* verilator lint_off UNUSEDSIGNAL */
    reg  [31:0]     t_idx;  // only the low IW bits are an index
    /* verilator lint_on UNUSEDSIGNAL */

    always @* begin
        bi_valid = {L{1'b0}};
        bi_op    = {L*8{1'b0}};
        bi_grp   = {L{1'b0}};
        bi_idx   = {L*IW{1'b0}};
        bi_val   = {L*64{1'b0}};
        t_idx    = 32'd0;
        for (i = 0; i < L; i = i + 1) begin
            t_idx = in_data[i*128+64 +: 32] >> BSH;
            for (b = 0; b < L; b = b + 1) begin
                if (issue[i] && (l_merge[i] ||
                    (l_bankop[i] && (l_bank[i*BW +: BW] == b[BW-1:0])))) begin
                    bi_valid[b]          = 1'b1;
                    bi_op[b*8 +: 8]      = in_data[i*128+96 +: 8];
                    bi_grp[b]            = in_data[i*128+104];
                    bi_idx[b*IW +: IW]   = l_merge[i] ? in_data[i*128+64 +: IW]
                                                      : t_idx[IW-1:0];
                    bi_val[b*64 +: 64]   = in_data[i*128 +: 64];
                end
            end
        end
    end

    // ------------------------------------------------------------------
    // execute stage: per-lane bookkeeping
    // ------------------------------------------------------------------
    reg  [L-1:0]    e_lv;       // lane issued last cycle and produces a result
    reg  [L*8-1:0]  e_lop;
    reg  [L-1:0]    e_lgrp;
    reg  [L*32-1:0] e_lslot;
    reg  [L-1:0]    e_lerr;
    reg  [L*BW-1:0] e_lbank;
    wire            flush;      // soft reset

    always @(posedge clk) begin
        if (rst || flush) begin
            e_lv <= {L{1'b0}};
        end else if (en) begin
            e_lv    <= issue & l_result;
            e_lerr  <= l_rangeerr;
            e_lbank <= l_bank;
            for (i = 0; i < L; i = i + 1) begin
                e_lop[i*8 +: 8]    <= in_data[i*128+96 +: 8];
                e_lgrp[i]          <= in_data[i*128+104];
                e_lslot[i*32 +: 32]<= in_data[i*128+64 +: 32];
            end
        end
    end

    // ------------------------------------------------------------------
    // banks
    // ------------------------------------------------------------------
    wire [L*64-1:0] bank_rval;  // READ: ref (+) acc, PENDING: acc
    wire [L-1:0]    bank_busy;  // op in execute stage
    wire [L-1:0]    bank_fwd;   // forwarded this cycle

    genvar g;
    generate
        for (g = 0; g < L; g = g + 1) begin : bank
            reg [127:0]   mem [0:SLOTS_PER_BANK-1];
            reg [127:0]   q;
            reg           ev;
            reg [7:0]     eop;
            reg           egrp;
            reg [IW-1:0]  eidx;
            reg [63:0]    eval;
            reg           fv;
            reg [IW-1:0]  fidx;
            reg [127:0]   fdata;

            wire          fwd     = fv && (fidx == eidx);
            wire [127:0]  cur     = fwd ? fdata : q;
            wire [63:0]   cref    = cur[63:0];
            wire [63:0]   cacc    = cur[127:64];
            wire [63:0]   acc_new = egrp ? (cacc ^ eval) : (cacc + eval);
            wire [63:0]   rd_val  = egrp ? (cref ^ cacc) : (cref + cacc);
            wire          wb      = ev && ((eop == OP_LOAD) || (eop == OP_ACCUM));
            wire [127:0]  wdata   = (eop == OP_LOAD) ? {64'd0, eval} : {acc_new, cref};
            wire          we      = clr_active | (en & wb);
            wire [IW-1:0] wa      = clr_active ? clr_idx : eidx;
            wire [127:0]  wd      = clr_active ? 128'd0 : wdata;

            integer k;
            initial begin
                for (k = 0; k < SLOTS_PER_BANK; k = k + 1) mem[k] = 128'd0;
            end

            always @(posedge clk) begin
                if (we) mem[wa] <= wd;
                if (en) q <= mem[bi_idx[g*IW +: IW]];
            end

            always @(posedge clk) begin
                if (rst || flush) begin
                    ev <= 1'b0;
                    fv <= 1'b0;
                end else begin
                    if (en) begin
                        ev   <= bi_valid[g];
                        eop  <= bi_op[g*8 +: 8];
                        egrp <= bi_grp[g];
                        eidx <= bi_idx[g*IW +: IW];
                        eval <= bi_val[g*64 +: 64];
                        // the bypass is valid for exactly the op issued
                        // in the same cycle as this write
                        fv <= wb;
                        if (wb) begin
                            fidx  <= eidx;
                            fdata <= wdata;
                        end
                    end
                    if (clr_active) fv <= 1'b0;
                end
            end

            assign bank_rval[g*64 +: 64] = (eop == OP_PENDING) ? cacc : rd_val;
            assign bank_busy[g]          = ev;
            assign bank_fwd[g]           = en & ev & fwd;
        end
    endgenerate

    // ------------------------------------------------------------------
    // result assembly
    // ------------------------------------------------------------------
    reg [L*128-1:0] res_data;
    reg [L-1:0]     res_mask;
    reg [63:0]      merged;
    reg [63:0]      lval;

    always @* begin
        res_data = {L*128{1'b0}};
        res_mask = e_lv;
        merged   = 64'd0;
        lval     = 64'd0;
        for (i = 0; i < L; i = i + 1) begin
            if (e_lv[i]) begin
                if (e_lerr[i]) begin
                    lval = 64'd0;
                end else if (e_lop[i*8 +: 8] == OP_MERGE) begin
                    merged = 64'd0;
                    for (b = 0; b < L; b = b + 1) begin
                        merged = e_lgrp[i] ? (merged ^ bank_rval[b*64 +: 64])
                                           : (merged + bank_rval[b*64 +: 64]);
                    end
                    lval = merged;
                end else begin
                    lval = 64'd0;
                    for (b = 0; b < L; b = b + 1) begin
                        if (e_lbank[i*BW +: BW] == b[BW-1:0]) lval = bank_rval[b*64 +: 64];
                    end
                end
                res_data[i*128 +: 128] = {22'd0, e_lerr[i], e_lgrp[i], e_lop[i*8 +: 8],
                                          e_lslot[i*32 +: 32], lval};
            end
        end
    end

    always @(posedge clk) begin
        if (rst || flush) begin
            out_valid <= 1'b0;
            out_mask  <= {L{1'b0}};
            out_data  <= {L*128{1'b0}};
        end else if (en) begin
            out_valid <= |res_mask;
            out_mask  <= res_mask;
            out_data  <= res_data;
        end
    end

    // ------------------------------------------------------------------
    // beat progress and RAM clear sweep
    // ------------------------------------------------------------------
    wire ctl_wr      = csr_we && (csr_addr == A_CONTROL);
    wire ctl_clrcnt  = ctl_wr && (csr_wdata[0] | csr_wdata[3]);
    wire ctl_clrerr  = ctl_wr && (csr_wdata[1] | csr_wdata[3]);
    wire ctl_clrslot = ctl_wr && (csr_wdata[2] | csr_wdata[3]);
    assign flush     = ctl_wr && csr_wdata[3];

    always @(posedge clk) begin
        if (rst || flush) begin
            done_q <= {L{1'b0}};
        end else if (in_ready) begin
            done_q <= {L{1'b0}};
        end else if (in_valid && en && !clr_block) begin
            done_q <= done_q | issue;
        end
    end

    always @(posedge clk) begin
        if (rst || ctl_clrslot) begin
            clr_req    <= 1'b1;
            clr_active <= 1'b0;
            clr_idx    <= {IW{1'b0}};
        end else if (clr_active) begin
            clr_idx <= clr_idx + 1'b1;
            if (clr_idx == LASTIDX) clr_active <= 1'b0;
        end else if (clr_req && (bank_busy == {L{1'b0}})) begin
            clr_req    <= 1'b0;
            clr_active <= 1'b1;
            clr_idx    <= {IW{1'b0}};
        end
    end

    // ------------------------------------------------------------------
    // counters and errors
    // ------------------------------------------------------------------
    reg [3:0]  n_ops, n_res, n_fwd, n_err;
    always @* begin
        n_ops = 4'd0;
        n_res = 4'd0;
        n_fwd = 4'd0;
        n_err = 4'd0;
        for (i = 0; i < L; i = i + 1) begin
            if (issue[i] && (in_data[i*128+96 +: 8] != OP_NOP)) n_ops = n_ops + 4'd1;
            if (issue[i] && (l_rangeerr[i] || l_badop[i]))      n_err = n_err + 4'd1;
            if (out_valid && out_ready && out_mask[i])          n_res = n_res + 4'd1;
            if (bank_fwd[i])                                     n_fwd = n_fwd + 4'd1;
        end
    end

    wire busy = in_valid | (|done_q) | (|bank_busy) | out_valid | clr_block;

    reg [63:0] cnt [0:NCNT-1];
    // 0 CYCLES, 1 BUSY_CYCLES, 2 OPS, 3 BEATS, 4 RESULTS,
    // 5 CONFLICT_STALLS, 6 OUT_STALLS, 7 FORWARDS
    wire [63:0] inc [0:NCNT-1];
    assign inc[0] = 64'd1;
    assign inc[1] = {63'd0, busy};
    assign inc[2] = {60'd0, n_ops};
    assign inc[3] = {63'd0, in_valid & in_ready};
    assign inc[4] = {60'd0, n_res};
    assign inc[5] = {63'd0, in_valid & en & ~clr_block & ~in_ready};
    assign inc[6] = {63'd0, in_valid & ~en};
    assign inc[7] = {60'd0, n_fwd};

    integer c;
    always @(posedge clk) begin
        for (c = 0; c < NCNT; c = c + 1) begin
            if (rst || ctl_clrcnt) cnt[c] <= 64'd0;
            else                   cnt[c] <= cnt[c] + inc[c];
        end
    end

    reg [2:0]  err_flags;       // 0 SLOT_RANGE, 1 BAD_OPCODE, 2 BAD_CSR
    reg [31:0] err_count;
    reg        any_range, any_badop;
    always @* begin
        any_range = |(issue & l_rangeerr);
        any_badop = |(issue & l_badop);
    end

    wire csr_known = (csr_addr == A_ID) || (csr_addr == A_VERSION) ||
                     (csr_addr == A_BANKS) || (csr_addr == A_SLOTS) ||
                     (csr_addr == A_CONTROL) || (csr_addr == A_STATUS) ||
                     (csr_addr == A_ERRORS) || (csr_addr == A_ERRCOUNT) ||
                     (csr_addr == A_SCRATCH) || (csr_addr == A_PACKET) ||
                     ((csr_addr >= A_CNT0) && (csr_addr < A_CNTEND) &&
                      (csr_addr[1:0] == 2'b00));
    wire bad_csr = (csr_we | csr_re) & ~csr_known;

    always @(posedge clk) begin
        if (rst || ctl_clrerr) begin
            err_flags <= 3'd0;
            err_count <= 32'd0;
        end else begin
            if (csr_we && (csr_addr == A_ERRORS)) err_flags <= err_flags & ~csr_wdata[2:0];
            if (any_range) err_flags[0] <= 1'b1;
            if (any_badop) err_flags[1] <= 1'b1;
            if (bad_csr)   err_flags[2] <= 1'b1;
            if (err_count != 32'hFFFF_FFFF) err_count <= err_count + {28'd0, n_err};
        end
    end

    // ------------------------------------------------------------------
    // CSR read / write
    // ------------------------------------------------------------------
    reg [31:0] scratch;
    reg [31:0] pkt_len;         // RESULT_PACKET: result beats per packet, 0 = no TLAST
    reg [31:0] pkt_cnt;         // result beats delivered in the current packet

    // TLAST for a DMA S2MM channel: asserted on every pkt_len-th result beat
    assign out_last = out_valid && (pkt_len != 32'd0) && (pkt_cnt == pkt_len - 32'd1);

    always @(posedge clk) begin
        if (rst || flush || (csr_we && (csr_addr == A_PACKET))) begin
            pkt_cnt <= 32'd0;
        end else if (out_valid && out_ready) begin
            pkt_cnt <= out_last ? 32'd0 : pkt_cnt + 32'd1;
        end
    end
    reg [31:0] hi_shadow;
    wire       idle = ~(|done_q) & ~(|bank_busy) & ~out_valid & ~clr_block;
    wire [2:0] cidx = csr_addr[5:3];

    always @(posedge clk) begin
        if (rst) begin
            scratch   <= 32'd0;
            pkt_len   <= 32'd0;
            hi_shadow <= 32'd0;
            csr_rdata <= 32'd0;
        end else begin
            if (csr_we && (csr_addr == A_SCRATCH)) scratch <= csr_wdata;
            if (csr_we && (csr_addr == A_PACKET))  pkt_len <= csr_wdata;
            if (csr_re) begin
                case (csr_addr)
                    A_ID:       csr_rdata <= ID_MAGIC;
                    A_VERSION:  csr_rdata <= VERSION;
                    A_BANKS:    csr_rdata <= NUM_BANKS;
                    A_SLOTS:    csr_rdata <= SLOTS_PER_BANK;
                    A_CONTROL:  csr_rdata <= 32'd0;
                    A_STATUS:   csr_rdata <= {29'd0, |err_flags, idle, clr_block};
                    A_ERRORS:   csr_rdata <= {29'd0, err_flags};
                    A_ERRCOUNT: csr_rdata <= err_count;
                    A_SCRATCH:  csr_rdata <= scratch;
                    A_PACKET:   csr_rdata <= pkt_len;
                    default: begin
                        if (csr_known && (csr_addr >= 8'h40)) begin
                            if (csr_addr[2] == 1'b0) begin
                                csr_rdata <= cnt[cidx][31:0];
                                hi_shadow <= cnt[cidx][63:32];
                            end else begin
                                csr_rdata <= hi_shadow;
                            end
                        end else begin
                            csr_rdata <= 32'd0;
                        end
                    end
                endcase
            end
        end
    end

`ifndef SYNTHESIS
    initial begin
        if (!(NUM_BANKS == 1 || NUM_BANKS == 2 || NUM_BANKS == 4 || NUM_BANKS == 8)) begin
            $display("atomik_engine: NUM_BANKS must be 1, 2, 4 or 8 (got %0d)", NUM_BANKS);
            $finish;
        end
        if (SLOTS_PER_BANK < 2 || (SLOTS_PER_BANK & (SLOTS_PER_BANK - 1)) != 0) begin
            $display("atomik_engine: SLOTS_PER_BANK must be a power of two >= 2 (got %0d)",
                     SLOTS_PER_BANK);
            $finish;
        end
    end
`endif

endmodule

`default_nettype wire
