//! The simulator on hand-assembled programs: instruction semantics, faults, the budget, and a
//! whole object written by [`crate::elf::write_object`] loaded with its maps, `.rodata` and
//! CO-RE relocations, run against a mocked world.

use super::world::{FMODE_READ, Task};
use super::*;
use crate::asm::{Alu, Asm, Cond, FP, Helper, R0, R1, R2, R3, R4, R5, R6, R7, Size};
use crate::elf::{ObjectSpec, ProgramObject, write_object};
use crate::ktypes::field;

fn run_asm(a: Asm) -> Result<u64, SimError> {
    let p = a.finish().expect("assembles");
    let prog = Program::from_code(&p.name, "test", &p.code)?;
    Sim::new(World::new())?.run(&prog, 0)
}

#[test]
fn alu_and_signed_jumps_follow_the_isa() {
    let mut a = Asm::new("t");
    let neg = a.label();
    a.mov_imm(R1, -5);
    a.mov_imm(R0, 1);
    // -5 s< 0 but as unsigned it is huge: only the signed compare takes the branch.
    a.jmp_imm(Cond::Gt, R1, 0, neg);
    a.mov_imm(R0, 2);
    a.bind(neg);
    a.alu_imm(Alu::Arsh, R1, 1); // -3
    a.alu_imm(Alu::Mul, R1, 10); // -30
    a.alu_reg(Alu::Add, R0, R1); // 1 - 30 = -29
    a.exit();
    assert_eq!(run_asm(a).unwrap() as i64, -29);

    let mut a = Asm::new("t");
    let yes = a.label();
    a.mov_imm(R1, -1);
    a.mov_imm(R0, 0);
    a.jmp_imm(Cond::Slt, R1, 0, yes);
    a.mov_imm(R0, 99);
    a.bind(yes);
    a.alu_imm(Alu::Div, R1, 0); // division by zero gives 0
    a.alu_reg(Alu::Add, R0, R1);
    a.exit();
    assert_eq!(run_asm(a).unwrap(), 0);
}

#[test]
fn alu32_zero_extends() {
    // 0xb4: mov32 r0, -1 -> 0x00000000ffffffff; 0x04: add32 r0, 1 -> 0.
    let code = [
        [0xb4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
        [0x07, 0, 0, 0, 0, 0, 0, 0],
        [0x95, 0, 0, 0, 0, 0, 0, 0],
    ]
    .concat();
    let p = Program::from_code("t", "t", &code).unwrap();
    assert_eq!(
        Sim::new(World::new()).unwrap().run(&p, 0).unwrap(),
        0xffff_ffff
    );
}

#[test]
fn out_of_bounds_stack_access_is_a_fault_naming_the_instruction() {
    let mut a = Asm::new("oob");
    a.ldx(Size::DW, R0, FP, -516);
    a.exit();
    let e = run_asm(a).unwrap_err();
    assert!(
        matches!(&e, SimError::Insn { pc: 0, what, .. } if what.contains("before stack of oob")),
        "{e}"
    );
    // Dereferencing a NULL pointer.
    let mut a = Asm::new("null");
    a.mov_imm(R1, 0);
    a.ldx(Size::W, R0, R1, 0);
    a.exit();
    assert!(run_asm(a).unwrap_err().to_string().contains("null"));
}

#[test]
fn a_loop_that_never_ends_exhausts_the_budget() {
    let mut a = Asm::new("spin");
    let top = a.label();
    a.bind(top);
    a.jmp(top);
    assert_eq!(
        run_asm(a).unwrap_err(),
        SimError::Budget("spin".into(), DEFAULT_BUDGET)
    );
}

#[test]
fn mocked_layout_differs_from_the_local_one() {
    for (root, path) in [
        ("task_struct", &["pid"][..]),
        ("task_struct", &["real_parent"]),
        ("file", &["f_path", "dentry"]),
        ("mount", &["mnt"]),
    ] {
        let local = field(root, path).local_offset as u32;
        assert_ne!(
            layout::offset(root, path).unwrap(),
            local,
            "{root}.{path:?}"
        );
    }
    assert_eq!(layout::struct_layout("upid").unwrap().0, 16);
}

/// A program that exercises every kind of relocation and the common helpers.
fn test_object() -> Vec<u8> {
    let mut a = Asm::new("probe");
    a.call(Helper::GetCurrentTaskBtf);
    a.mov(R6, R0);
    a.ldx_field(Size::W, R1, R6, field("task_struct", &["pid"]));
    a.stx(Size::W, FP, -4, R1);
    a.ldx_field(Size::DW, R2, R6, field("task_struct", &["real_parent"]));
    a.ldx_field(Size::W, R7, R2, field("task_struct", &["tgid"]));
    a.stx(Size::DW, FP, -16, R7);
    // GUARD-like hash: pid -> parent tgid.
    a.ld_map(R1, "H");
    a.mov(R2, FP);
    a.alu_imm(Alu::Add, R2, -4);
    a.mov(R3, FP);
    a.alu_imm(Alu::Add, R3, -16);
    a.mov_imm(R4, 0);
    a.call(Helper::MapUpdateElem);
    // A word of .rodata, through a direct value pointer.
    a.ld_data(R4, ".rodata.t", 4);
    a.ldx(Size::W, R7, R4, 0);
    // Event: { pid, rodata word }.
    a.ld_map(R1, "EV");
    a.mov_imm(R2, 8);
    a.mov_imm(R3, 0);
    a.call(Helper::RingbufReserve);
    let out = a.label();
    a.jmp_imm(Cond::Eq, R0, 0, out);
    a.ldx(Size::W, R5, FP, -4);
    a.stx(Size::W, R0, 0, R5);
    a.stx(Size::W, R0, 4, R7);
    a.mov(R1, R0);
    a.mov_imm(R2, 0);
    a.call(Helper::RingbufSubmit);
    a.mov_imm(R1, 9);
    a.call(Helper::SendSignal);
    a.bind(out);
    a.mov_imm(R0, 0);
    a.exit();
    let p = a.finish().unwrap();
    let maps = vec![
        (
            "H".to_string(),
            MapDef {
                map_type: MAP_HASH,
                key_size: 4,
                value_size: 8,
                max_entries: 16,
                map_flags: 1,
            },
        ),
        (
            "EV".to_string(),
            MapDef {
                map_type: MAP_RINGBUF,
                key_size: 0,
                value_size: 0,
                max_entries: 4096,
                map_flags: 0,
            },
        ),
    ];
    let spec = ObjectSpec {
        license: "GPL".into(),
        programs: vec![ProgramObject {
            name: p.name.clone(),
            section: "tp_btf/sched_process_exec".into(),
            code: p.code,
            map_relocs: p.map_relocs,
            core_relocs: p.core_relocs,
        }],
        maps,
        btf_maps: Vec::new(),
        rodata: vec![(".rodata.t".into(), vec![1, 0, 0, 0, 0xef, 0xbe, 0xad, 0xde])],
        metadata: b"{}".to_vec(),
    };
    write_object(&spec).expect("object")
}

#[test]
fn runs_an_object_with_maps_rodata_and_core_relocations() {
    let world = World::new()
        .task(Task::new(100, &["python", "app.py"]).in_namespace(1, 1))
        .task(Task::new(200, &["cat", "/mnt/secrets/x"]).parent(100))
        .open(200, 3, "/mnt/secrets/x", FMODE_READ);
    let mut sim = Sim::new(world).unwrap();
    let obj = sim.load(&test_object()).unwrap();
    let prog = obj.program("tp_btf/sched_process_exec").unwrap().clone();
    sim.world.current = 200;
    assert_eq!(sim.run(&prog, 0).unwrap(), 0);
    assert_eq!(
        sim.map_get("H", &200u32.to_le_bytes()).unwrap(),
        100u64.to_le_bytes()
    );
    let mut want = 200u32.to_le_bytes().to_vec();
    want.extend_from_slice(&0xdead_beef_u32.to_le_bytes());
    assert_eq!(sim.events, vec![want]);
    assert_eq!(sim.signals, vec![(200, 9)]);
    // The pid load's offset is the simulator's, not the object's local one.
    let local = field("task_struct", &["pid"]).local_offset;
    // Instruction 2 is `r1 = task->pid`.
    let mocked = layout::offset("task_struct", &["pid"]).unwrap() as i16;
    assert_eq!(prog.insns[2].off, mocked);
    assert_ne!(i32::from(mocked), local);
}

#[test]
fn rodata_is_read_only() {
    let mut a = Asm::new("w");
    a.ld_data(R1, ".rodata.t", 0);
    a.st(Size::W, R1, 0, 7);
    a.mov_imm(R0, 0);
    a.exit();
    let p = a.finish().unwrap();
    let spec = ObjectSpec {
        license: "GPL".into(),
        programs: vec![ProgramObject {
            name: "w".into(),
            section: "tracepoint/x/y".into(),
            code: p.code,
            map_relocs: p.map_relocs,
            core_relocs: p.core_relocs,
        }],
        maps: Vec::new(),
        btf_maps: Vec::new(),
        rodata: vec![(".rodata.t".into(), vec![0; 8])],
        metadata: b"{}".to_vec(),
    };
    let mut sim = Sim::new(World::new()).unwrap();
    let obj = sim.load(&write_object(&spec).unwrap()).unwrap();
    let e = sim.run(obj.program("w").unwrap(), 0).unwrap_err();
    assert!(e.to_string().contains("not writable"), "{e}");
}

/// The world changes as the kernel would between program runs: a fork adds a task pointing at
/// its parent, an exec gives it a new mm and comm, an open fills the lowest free descriptor.
#[test]
fn the_world_evolves_after_it_is_laid_out() {
    let mut sim = Sim::new(World::new().task(Task::new(1, &["/sbin/init"]))).unwrap();
    let child = Task::new(2, &["/sbin/init"]).parent(1).in_namespace(1, 1);
    sim.world.add_task(&mut sim.mem, child).unwrap();
    let at = |root: &str, path: &[&str]| u64::from(layout::offset(root, path).unwrap());
    let read_u64 = |sim: &Sim, addr: u64| {
        u64::from_le_bytes(sim.mem.read_any(addr, 8).unwrap().try_into().unwrap())
    };
    let task = sim.world.task_addr[&2];
    assert_eq!(
        read_u64(&sim, task + at("task_struct", &["real_parent"])),
        sim.world.task_addr[&1]
    );
    let argv = vec!["cat".to_string(), "/x".to_string()];
    sim.world.set_image(&mut sim.mem, 2, &argv, "cat").unwrap();
    let mm = read_u64(&sim, task + at("task_struct", &["mm"]));
    let start = read_u64(&sim, mm + at("mm_struct", &["arg_start"]));
    let end = read_u64(&sim, mm + at("mm_struct", &["arg_end"]));
    assert_eq!(
        sim.mem
            .read(start, (end - start) as usize, &[mem::Kind::User])
            .unwrap(),
        b"cat\0/x\0"
    );
    assert_eq!(
        &sim.mem
            .read_any(task + at("task_struct", &["comm"]), 4)
            .unwrap(),
        b"cat\0"
    );
    assert_eq!(
        sim.world
            .install_file(&mut sim.mem, 2, "/a", FMODE_READ)
            .unwrap(),
        3
    );
    assert_eq!(
        sim.world
            .install_file(&mut sim.mem, 2, "/b", FMODE_READ)
            .unwrap(),
        4
    );
    assert_eq!(
        sim.world
            .install_file(&mut sim.mem, 1, "/a", FMODE_READ)
            .unwrap(),
        3
    );
    // A task that exists, a parent that does not, a relative path: errors.
    assert!(
        sim.world
            .add_task(&mut sim.mem, Task::new(2, &["x"]))
            .is_err()
    );
    let orphan = Task::new(9, &["x"]).parent(8);
    assert!(sim.world.add_task(&mut sim.mem, orphan).is_err());
    assert!(
        sim.world
            .install_file(&mut sim.mem, 1, "rel", FMODE_READ)
            .is_err()
    );
}
