// Self-checking test bench for atomik_axi_top: AXI4-Lite accesses through
// axil_csr_bridge (address and data phases in either order, response
// back-pressure, reads interleaved with writes) and ops / results through
// the AXI4-Stream ports, including TLAST from RESULT_PACKET.
`timescale 1ns/1ps
`default_nettype none

module tb_axi;
    parameter integer NUM_BANKS = 4;
    localparam integer L = NUM_BANKS;
    localparam integer S = 16;

    reg clk = 1'b0;
    always #5 clk = ~clk;
    reg aresetn = 1'b0;

    reg  [7:0]  awaddr;  reg awvalid; wire awready;
    reg  [31:0] wdata;   reg wvalid;  wire wready;
    wire [1:0]  bresp;   wire bvalid; reg bready;
    reg  [7:0]  araddr;  reg arvalid; wire arready;
    wire [31:0] rdata;   wire [1:0] rresp; wire rvalid; reg rready;
    reg  [L*128-1:0] s_tdata; reg s_tvalid; wire s_tready;
    wire [L*128-1:0] m_tdata; wire [L*16-1:0] m_tkeep; wire m_tvalid; reg m_tready; wire m_tlast;

    atomik_axi_top #(.NUM_BANKS(NUM_BANKS), .SLOTS_PER_BANK(S)) dut (
        .aclk(clk), .aresetn(aresetn),
        .s_axil_awaddr(awaddr), .s_axil_awvalid(awvalid), .s_axil_awready(awready),
        .s_axil_wdata(wdata), .s_axil_wstrb(4'hF), .s_axil_wvalid(wvalid), .s_axil_wready(wready),
        .s_axil_bresp(bresp), .s_axil_bvalid(bvalid), .s_axil_bready(bready),
        .s_axil_araddr(araddr), .s_axil_arvalid(arvalid), .s_axil_arready(arready),
        .s_axil_rdata(rdata), .s_axil_rresp(rresp), .s_axil_rvalid(rvalid), .s_axil_rready(rready),
        .s_axis_tdata(s_tdata), .s_axis_tvalid(s_tvalid), .s_axis_tready(s_tready), .s_axis_tlast(1'b0),
        .m_axis_tdata(m_tdata), .m_axis_tkeep(m_tkeep), .m_axis_tvalid(m_tvalid),
        .m_axis_tready(m_tready), .m_axis_tlast(m_tlast)
    );

    integer guard;

    // AXI4-Lite write; order: 0 = AW then W, 1 = W then AW, 2 = together
    task axil_write;
        input [7:0]  a;
        input [31:0] d;
        input integer order;
        input integer bdelay;
        begin
            @(negedge clk);
            if (order != 1) begin awaddr = a; awvalid = 1'b1; end
            if (order != 0) begin wdata = d; wvalid = 1'b1; end
            guard = 0;
            while ((awvalid && !awready) || (wvalid && !wready)) begin
                @(negedge clk);
                guard = guard + 1;
                if (guard > 100) $fatal(1, "AXI-Lite write address/data not accepted");
            end
            @(negedge clk);
            awvalid = 1'b0; wvalid = 1'b0;
            if (order == 0) begin wdata = d; wvalid = 1'b1; end
            if (order == 1) begin awaddr = a; awvalid = 1'b1; end
            if (order != 2) begin
                while ((awvalid && !awready) || (wvalid && !wready)) @(negedge clk);
                @(negedge clk);
                awvalid = 1'b0; wvalid = 1'b0;
            end
            repeat (bdelay) @(negedge clk);
            bready = 1'b1;
            guard = 0;
            while (!bvalid) begin
                @(negedge clk);
                guard = guard + 1;
                if (guard > 100) $fatal(1, "no write response");
            end
            if (bresp !== 2'b00) $fatal(1, "bresp %b", bresp);
            @(negedge clk);
            bready = 1'b0;
        end
    endtask

    task axil_read;
        input  [7:0]  a;
        output [31:0] d;
        input integer rdelay;
        begin
            @(negedge clk);
            araddr = a; arvalid = 1'b1;
            while (!arready) @(negedge clk);
            @(negedge clk);
            arvalid = 1'b0;
            repeat (rdelay) @(negedge clk);
            rready = 1'b1;
            guard = 0;
            while (!rvalid) begin
                @(negedge clk);
                guard = guard + 1;
                if (guard > 100) $fatal(1, "no read data");
            end
            d = rdata;
            if (rresp !== 2'b00) $fatal(1, "rresp %b", rresp);
            @(negedge clk);
            rready = 1'b0;
        end
    endtask

    task expect_reg;
        input [7:0]  a;
        input [31:0] want;
        input integer rdelay;
        reg [31:0] got;
        begin
            axil_read(a, got, rdelay);
            if (got !== want) $fatal(1, "reg %h: got %h expected %h", a, got, want);
        end
    endtask

    function [127:0] mkop;
        input [7:0]  op;
        input        grp;
        input [31:0] slot;
        input [63:0] val;
        begin
            mkop = {23'd0, grp, op, slot, val};
        end
    endfunction

    // push one beat, all lanes the same kind of op on consecutive slots
    task push;
        input [7:0]  op;
        input [63:0] val;
        integer i;
        begin
            @(negedge clk);
            for (i = 0; i < L; i = i + 1) s_tdata[i*128 +: 128] = mkop(op, 1'b0, i, val + i);
            s_tvalid = 1'b1;
            @(posedge clk);
            while (!s_tready) @(posedge clk);
            @(negedge clk);
            s_tvalid = 1'b0;
        end
    endtask

    integer i, k, nlast;
    reg [31:0] v;
    integer nres = 0;
    reg [L*128-1:0] rbeat [0:7];
    reg [L*16-1:0]  rkeep [0:7];
    reg             rlast [0:7];
    always @(posedge clk) begin
        if (aresetn && m_tvalid && m_tready) begin
            if (nres >= 8) $fatal(1, "too many result beats");
            rbeat[nres] = m_tdata;
            rkeep[nres] = m_tkeep;
            rlast[nres] = m_tlast;
            nres = nres + 1;
        end
    end

    initial begin
        nlast = 0;
        awvalid = 0; wvalid = 0; bready = 0; arvalid = 0; rready = 0;
        awaddr = 0; wdata = 0; araddr = 0;
        s_tvalid = 0; s_tdata = 0; m_tready = 0;
        repeat (3) @(posedge clk);
        aresetn = 1'b1;
        // wait for the reset clear sweep
        v = 1;
        while (v[0]) axil_read(8'h14, v, 0);

        expect_reg(8'h00, 32'h4154_4D4B, 0);
        expect_reg(8'h04, 32'h0001_0000, 3);
        expect_reg(8'h08, NUM_BANKS, 0);
        expect_reg(8'h0C, S, 1);
        for (k = 0; k < 3; k = k + 1) begin
            axil_write(8'h20, 32'h1000 + k, k, k);
            expect_reg(8'h20, 32'h1000 + k, k);
        end
        // unmapped access: OKAY on the bus, BAD_CSR in ERRORS
        expect_reg(8'h3C, 32'd0, 0);
        expect_reg(8'h18, 32'h4, 0);
        axil_write(8'h18, 32'h4, 2, 0);
        expect_reg(8'h18, 32'h0, 0);
        // read and write requested in the same cycle: both complete
        @(negedge clk);
        awaddr = 8'h20; awvalid = 1; wdata = 32'hBEEF; wvalid = 1; bready = 1;
        araddr = 8'h00; arvalid = 1; rready = 1;
        guard = 0;
        while (awvalid || arvalid) begin
            @(posedge clk);
            if (awready) awvalid <= 0;
            if (wready) wvalid <= 0;
            if (arready) arvalid <= 0;
            guard = guard + 1;
            if (guard > 50) $fatal(1, "simultaneous read/write stuck");
        end
        while (!rvalid) @(posedge clk);
        if (rdata !== 32'h4154_4D4B) $fatal(1, "simultaneous read got %h", rdata);
        @(negedge clk);
        bready = 0; rready = 0;
        expect_reg(8'h20, 32'hBEEF, 0);

        // ops through the streams: LOAD, ACCUM, READ per lane; TLAST every 2 result beats
        axil_write(8'h24, 32'd2, 2, 0);
        push(8'd1, 64'd100);           // LOAD slot i = 100 + i
        push(8'd2, 64'd5);             // ACCUM slot i += 5 + i
        m_tready = 1'b1;
        for (k = 0; k < 4; k = k + 1) push(8'd3, 64'd0);   // READ x4 -> 4 result beats
        guard = 0;
        while (nres < 4) begin
            @(posedge clk);
            guard = guard + 1;
            if (guard > 50) $fatal(1, "only %0d result beats", nres);
        end
        @(negedge clk);
        m_tready = 1'b0;
        for (k = 0; k < 4; k = k + 1) begin
            if (rkeep[k] !== {L*16{1'b1}}) $fatal(1, "tkeep not all ones");
            for (i = 0; i < L; i = i + 1)
                if (rbeat[k][i*128 +: 64] !== 64'd105 + 2 * i)
                    $fatal(1, "beat %0d lane %0d: got %0d", k, i, rbeat[k][i*128 +: 64]);
            if (rlast[k] !== (k % 2 == 1)) $fatal(1, "tlast %b on result beat %0d", rlast[k], k);
            if (rlast[k]) nlast = nlast + 1;
        end
        if (nlast != 2) $fatal(1, "%0d TLASTs", nlast);
        // counters through the bridge: 6 beats, 6*L ops, 4*L results
        expect_reg(8'h58, 6, 0);
        expect_reg(8'h5C, 0, 0);
        expect_reg(8'h50, 6 * L, 0);
        expect_reg(8'h60, 4 * L, 2);
        $display("PASS tb_axi_top NUM_BANKS=%0d", NUM_BANKS);
        $finish;
    end

    initial begin
        #2_000_000;
        $fatal(1, "global timeout");
    end
endmodule

`default_nettype wire
